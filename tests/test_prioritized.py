"""PrioritizedReplay: hand-computed priorities and weights, stale tickets, frame-replay slots, resume."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from test_frame_replay import OBS_SHAPE, vector_stream

from dueldqn.replay import Batch, FrameReplayBuffer, PrioritizedReplay, ReplayBuffer


def _add(replay: PrioritizedReplay | ReplayBuffer, value: float, terminated: bool = False) -> None:
    """One transition from one env, observation ``[value]``, next observation ``[value + 0.5]``."""
    obs = np.array([[value]], dtype=np.float32)
    replay.add(
        obs,
        np.array([int(value) % 3]),
        np.array([value], np.float32),
        obs + 0.5,
        np.array([terminated]),
        np.array([False]),
    )


def _filled(values: list[float], capacity: int, alpha: float = 0.5) -> PrioritizedReplay:
    replay = PrioritizedReplay(ReplayBuffer(capacity, (1,), np.float32), alpha=alpha)
    for value in values:
        _add(replay, value)
    return replay


def _assert_batches_equal(got: Batch, want: Batch) -> None:
    for name, a, b in zip(Batch._fields, got, want, strict=True):
        if name in ("discounts", "next_mask"):  # n-step's and action masks' fields: None here
            assert a is None and b is None
            continue
        assert a is not None and b is not None, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype, name


def test_hand_computed_priorities_probabilities_and_weights() -> None:
    replay = _filled([0.0, 1.0, 2.0, 3.0], capacity=4, alpha=0.5)  # slot i holds obs [i]
    first = replay.sample(4, np.random.default_rng(0), beta=0.4)
    # all priorities 1 (new transitions): 4 strata of one slot each, weights 1; the tickets are
    # generation * 4 + slot, each slot written once (generation 1)
    assert first.indices is not None and first.weights is not None
    assert first.indices.tolist() == [4, 5, 6, 7] and first.weights.tolist() == [1.0] * 4
    assert first.obs[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]

    # |delta| + eps = 1, 4, 9, 16 -> p = (|delta| + eps)^0.5 = 1, 2, 3, 4 -> P = 0.1, 0.2, 0.3, 0.4
    replay.update_priorities(first.indices, np.array([1.0, 4.0, 9.0, 16.0]) - 1e-6)
    np.testing.assert_allclose(replay.tree.leaves, [1.0, 2.0, 3.0, 4.0], rtol=1e-12)
    # w_i = (N P_i)^-0.4 / max_j (N P_j)^-0.4 with N = 4: (0.4, 0.8, 1.2, 1.6)^-0.4 / 0.4^-0.4
    expected_w = [1.0, 0.757858283, 0.644394015, 0.574349177]
    # 10 strata of mass 1 over cumulative sums (1, 3, 6, 10): slot i is drawn i + 1 times
    batch = replay.sample(10, np.random.default_rng(1), beta=0.4)
    assert batch.indices is not None and batch.weights is not None
    assert batch.indices.tolist() == [4, 5, 5, 6, 6, 6, 7, 7, 7, 7]
    assert batch.weights.dtype == np.float32 and batch.indices.dtype == np.int64
    np.testing.assert_allclose(batch.weights, np.repeat(expected_w, [1, 2, 3, 4]), rtol=1e-6)
    assert batch.obs[:, 0].tolist() == batch.rewards.tolist() == (batch.indices - 4).tolist()
    # beta = 0: no correction
    assert replay.sample(10, np.random.default_rng(1), beta=0.0).weights.tolist() == [1.0] * 10  # type: ignore[union-attr]


def test_new_transitions_get_the_largest_priority_so_far() -> None:
    replay = _filled([0.0, 1.0], capacity=8, alpha=0.5)
    assert replay.max_priority == 1.0 and replay.tree.leaves[:3].tolist() == [1.0, 1.0, 0.0]
    batch = replay.sample(2, np.random.default_rng(0), beta=1.0)
    assert batch.indices is not None
    replay.update_priorities(batch.indices, np.array([9.0 - 1e-6, 0.25 - 1e-6]))  # p = 3, 0.5
    np.testing.assert_allclose(replay.tree.leaves[:2], [3.0, 0.5])
    _add(replay, 2.0)
    assert replay.tree.leaves[2] == replay.max_priority == pytest.approx(3.0)
    replay.update_priorities(batch.indices[:1], np.array([0.0]))  # the max is historical: it stays 3
    _add(replay, 3.0)
    assert replay.tree.leaves[3] == pytest.approx(3.0)
    np.testing.assert_allclose(replay.tree.leaves[:2], [1e-3, 0.5])  # (0 + 1e-6)^0.5


def test_stale_updates_are_dropped_after_the_slot_is_overwritten() -> None:
    replay = _filled([0.0, 1.0, 2.0, 3.0], capacity=4)
    tickets = replay.sample(4, np.random.default_rng(0), beta=0.4).indices
    assert tickets is not None and tickets.tolist() == [4, 5, 6, 7]  # generation 1 * 4 slots + slot
    _add(replay, 4.0)  # wraps onto slot 0: generation 2
    replay.update_priorities(tickets, np.array([24.0, 4.0, 9.0, 16.0]) - 1e-6)  # slot 0's is stale
    np.testing.assert_allclose(replay.tree.leaves, [1.0, 2.0, 3.0, 4.0], rtol=1e-6)
    # slot 0 (mass [0, 1) of 10) is the first stratum of 10; its ticket is now 2 * 4 + 0
    assert replay.sample(10, np.random.default_rng(0), beta=1.0).indices[0] == 8  # type: ignore[index]
    for value in [5.0, 6.0, 7.0]:  # a full wrap: every ticket is stale now, nothing changes
        _add(replay, value)
    before = replay.tree.leaves.copy()
    replay.update_priorities(tickets, np.array([100.0, 100.0, 100.0, 100.0]))
    assert np.array_equal(replay.tree.leaves, before) and replay.max_priority == pytest.approx(4.0)


def _stack(a: int, b: int) -> np.ndarray:
    return np.array([[[a]], [[b]]], dtype=np.uint8)  # (C=2, 1, 1)


def test_frame_replay_slots_without_a_transition_have_priority_zero() -> None:
    storage = FrameReplayBuffer(8, (2, 1, 1), np.uint8, num_envs=1)  # one env, 8 slots, window 6
    replay = PrioritizedReplay(storage, alpha=0.6)
    no, yes = np.array([False]), np.array([True])
    steps = [  # (s, s', terminated, valid): two episodes, the autoreset step between them
        (_stack(1, 1), _stack(1, 2), no, yes),  # lead slot 0 (frame 1), transition in slot 1
        (_stack(1, 2), _stack(2, 3), yes, yes),  # slot 2, terminated
        (_stack(2, 3), _stack(4, 4), no, no),  # autoreset: not stored
        (_stack(4, 4), _stack(4, 5), no, yes),  # lead slot 3 (frame 4), transition in slot 4
        (_stack(4, 5), _stack(5, 6), no, yes),  # slot 5
    ]
    for s, s_next, terminated, valid in steps:
        replay.add(s[None], np.array([1]), np.array([0.5], np.float32), s_next[None], terminated, no, valid)
    assert replay.tree.leaves.tolist() == [0, 1, 1, 0, 1, 1, 0, 0]
    assert len(replay) == 4
    batch = replay.sample(64, np.random.default_rng(0), beta=0.5)
    assert batch.indices is not None
    assert set((batch.indices % 8).tolist()) == {1, 2, 4, 5}
    old_ticket = batch.indices[(batch.indices % 8) == 1][:1]
    for frame in (7, 8):  # slots 6 and 7: the window (6 newest slots) now starts at slot 2
        s = _stack(frame - 2, frame - 1)
        replay.add(s[None], np.array([1]), np.array([0.5], np.float32), _stack(frame - 1, frame)[None], no, no)
    assert replay.tree.leaves.tolist() == [0, 0, 1, 0, 1, 1, 1, 1]  # slot 1 left the window
    replay.update_priorities(old_ticket, np.array([5.0]))  # its slot changed: dropped
    assert replay.tree.leaves[1] == 0.0


def test_frame_replay_priorities_follow_the_sampleable_slots_over_wrap_arounds() -> None:
    rng = np.random.default_rng(5)
    storage = FrameReplayBuffer(60, OBS_SHAPE, np.uint8, num_envs=3)  # 20 slots per env
    replay = PrioritizedReplay(storage, alpha=0.6)
    for step, (args, _) in enumerate(vector_stream(3, 150, rng)):
        replay.add(*args)
        held = np.flatnonzero(replay.tree.leaves)
        assert np.array_equal(held, np.sort(storage.valid_indices())), step
        if step % 5 == 4:
            batch = replay.sample(8, rng, beta=0.5)
            replay.update_priorities(batch.indices, rng.exponential(size=8))


def test_sampling_frequencies_and_weights_match_brute_force() -> None:
    rng = np.random.default_rng(6)
    replay = _filled([float(v) for v in range(10)], capacity=16, alpha=0.7)
    td_abs = rng.exponential(size=10)
    replay.update_priorities(np.arange(10) + 16, td_abs)  # generation 1 tickets of slots 0..9
    p = (td_abs + 1e-6) ** 0.7
    prob = p / p.sum()
    slots: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for _ in range(1000):
        batch = replay.sample(100, rng, beta=0.6)
        assert batch.indices is not None and batch.weights is not None
        slots.append(batch.indices % 16)
        weights.append(batch.weights)
    slots_D, weights_D = np.concatenate(slots), np.concatenate(weights)
    freq = np.bincount(slots_D, minlength=16)[:10] / len(slots_D)
    sigma = np.sqrt(prob * (1 - prob) / len(slots_D))
    assert (np.abs(freq - prob) <= 4 * sigma).all(), (freq, prob)
    w = (10 * prob) ** -0.6 / ((10 * prob) ** -0.6).max()
    np.testing.assert_allclose(weights_D, w[slots_D], rtol=1e-6)


def test_alpha_zero_is_uniform() -> None:
    replay = _filled([0.0, 1.0, 2.0], capacity=4, alpha=0.0)
    replay.update_priorities(np.array([4, 5, 6]), np.array([0.0, 7.0, 100.0]))
    assert replay.tree.leaves.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert replay.sample(3, np.random.default_rng(0), beta=1.0).weights.tolist() == [1.0, 1.0, 1.0]  # type: ignore[union-attr]


def _round_trip(
    build: Callable[[], PrioritizedReplay], feed: Callable[[PrioritizedReplay, np.random.Generator], None]
) -> None:
    """Checkpoint a fed replay, restore it into a fresh one, then both sample and go on alike."""
    rng = np.random.default_rng(7)
    replay = build()
    feed(replay, rng)
    restored = build()
    restored.load_state_dict(replay.state_dict())
    assert np.array_equal(restored.tree.sum_tree, replay.tree.sum_tree)
    assert np.array_equal(restored.tree.min_tree, replay.tree.min_tree)
    assert np.array_equal(restored.generation_S, replay.generation_S)
    assert restored.max_priority == replay.max_priority and len(restored) == len(replay)
    state = rng.bit_generator.state
    want = replay.sample(32, rng, beta=0.5)
    rng.bit_generator.state = state
    _assert_batches_equal(restored.sample(32, rng, beta=0.5), want)
    for r in (replay, restored):  # and they go on alike
        r.update_priorities(want.indices, np.linspace(0.0, 3.0, 32))
    feed(replay, np.random.default_rng(8))
    feed(restored, np.random.default_rng(8))
    assert np.array_equal(restored.tree.sum_tree, replay.tree.sum_tree)
    _assert_batches_equal(
        restored.sample(32, np.random.default_rng(9), beta=0.5), replay.sample(32, np.random.default_rng(9), beta=0.5)
    )


def test_state_round_trip_is_exact_for_the_ring() -> None:
    def feed(replay: PrioritizedReplay, rng: np.random.Generator) -> None:
        for step in range(45):  # wraps the 32 slots
            _add(replay, float(rng.normal()))
            if step % 4 == 3:
                batch = replay.sample(8, rng, beta=0.5)
                replay.update_priorities(batch.indices, rng.exponential(size=8))

    _round_trip(lambda: PrioritizedReplay(ReplayBuffer(32, (1,), np.float32), alpha=0.6), feed)


def test_state_round_trip_is_exact_for_frames() -> None:
    def feed(replay: PrioritizedReplay, rng: np.random.Generator) -> None:
        for step, (args, _) in enumerate(vector_stream(2, 60, rng)):
            replay.add(*args)
            if step % 4 == 3:
                batch = replay.sample(8, rng, beta=0.5)
                replay.update_priorities(batch.indices, rng.exponential(size=8))

    _round_trip(lambda: PrioritizedReplay(FrameReplayBuffer(48, OBS_SHAPE, np.uint8, num_envs=2), alpha=0.6), feed)


def test_rejects_bad_input() -> None:
    replay = PrioritizedReplay(ReplayBuffer(4, (1,), np.float32), alpha=0.5)
    with pytest.raises(ValueError, match="empty"):
        replay.sample(2, np.random.default_rng(0), beta=0.4)
    _add(replay, 0.0)
    with pytest.raises(ValueError, match="finite"):
        replay.update_priorities(np.array([4]), np.array([np.nan]))
    other = PrioritizedReplay(ReplayBuffer(4, (1,), np.float32), alpha=0.6)
    with pytest.raises(ValueError, match="alpha"):
        other.load_state_dict(replay.state_dict())
