"""The ring buffer: storing, wrapping, sampling, the warm-up rule."""

from __future__ import annotations

import numpy as np
import pytest

from dueldqn.replay import ReplayBuffer


def _add(buf: ReplayBuffer, first: int, n: int, valid: np.ndarray | None = None) -> None:
    obs = np.arange(first, first + n, dtype=np.float32)[:, None].repeat(2, axis=1)
    buf.add(
        obs,
        np.arange(first, first + n),
        np.arange(first, first + n, dtype=np.float32) / 10,
        obs + 0.5,
        (np.arange(first, first + n) % 3 == 0),
        np.zeros(n, dtype=bool),
        valid,
    )


def test_ring_buffer_wraps_and_keeps_the_newest() -> None:
    buf = ReplayBuffer(5, (2,), np.float32)
    assert len(buf) == 0 and not buf.can_sample(1)
    _add(buf, 0, 3)
    assert len(buf) == 3 and buf.pos == 3
    _add(buf, 3, 4)  # wraps: transitions 3, 4 at slots 3, 4; 5, 6 at slots 0, 1
    assert len(buf) == 5 and buf.pos == 2
    np.testing.assert_array_equal(buf.actions, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.obs[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.next_obs[:, 1], [5.5, 6.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(buf.rewards, [0.5, 0.6, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(buf.terminated, [0, 1, 0, 1, 0])
    assert buf.can_sample(5) and not buf.can_sample(6)


def test_invalid_steps_are_not_stored() -> None:
    buf = ReplayBuffer(10, (2,), np.float32)
    _add(buf, 0, 4, valid=np.array([True, False, True, False]))
    assert len(buf) == 2
    np.testing.assert_array_equal(buf.actions[:2], [0, 2])


def test_sample_is_seeded_uniform_and_consistent() -> None:
    buf = ReplayBuffer(100, (2,), np.float32)
    _add(buf, 0, 100)
    batch = buf.sample(64, np.random.default_rng(1))
    again = buf.sample(64, np.random.default_rng(1))
    for a, b in zip(batch, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # every sampled row is one stored transition, fields aligned
    np.testing.assert_array_equal(batch.obs[:, 0], batch.actions)
    np.testing.assert_allclose(batch.next_obs[:, 0], batch.actions + 0.5)
    np.testing.assert_allclose(batch.rewards, batch.actions / 10, rtol=1e-6)
    assert batch.actions.dtype == np.int64 and batch.rewards.dtype == np.float32
    counts = np.bincount(buf.sample(100_000, np.random.default_rng(2)).actions, minlength=100)
    assert counts.min() > 850 and counts.max() < 1150  # uniform: 1000 each


def test_dtype_is_kept_until_sampled() -> None:
    buf = ReplayBuffer(4, (3, 2), np.uint8)
    frame = np.full((1, 3, 2), 200, dtype=np.uint8)
    buf.add(frame, np.array([1]), np.array([1.0]), frame, np.array([False]), np.array([True]))
    assert buf.obs.dtype == np.uint8 and buf.sample(2, np.random.default_rng(0)).obs.dtype == np.uint8
    assert buf.terminated[0] == 0.0  # truncated is not terminal


def test_state_dict_round_trip_and_errors() -> None:
    buf = ReplayBuffer(5, (2,), np.float32)
    _add(buf, 0, 7)
    other = ReplayBuffer(5, (2,), np.float32)
    other.load_state_dict(buf.state_dict())
    assert (other.pos, other.size) == (buf.pos, buf.size)
    np.testing.assert_array_equal(other.obs, buf.obs)
    with pytest.raises(ValueError, match="capacity 5"):
        ReplayBuffer(6, (2,), np.float32).load_state_dict(buf.state_dict())
    with pytest.raises(ValueError, match="positive"):
        ReplayBuffer(0, (2,), np.float32)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (2,), np.float32).sample(1, np.random.default_rng(0))
