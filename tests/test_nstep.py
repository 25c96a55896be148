"""n-step folding against hand-computed returns and a slow per-sample loop."""

from __future__ import annotations

import numpy as np
import pytest

from dueldqn.replay import Batch, ReplayBuffer
from dueldqn.replay.nstep import NStepFold, fold_n_step

F32 = np.float32


def _fold(
    slots: list[int], rewards: list[float], terminated: list[int], next_: list[int], n: int, gamma: float
) -> NStepFold:
    return fold_n_step(
        np.array(slots),
        rewards_S=np.array(rewards, F32),
        terminated_S=np.array(terminated, bool),
        next_S=np.array(next_),
        n=n,
        gamma=gamma,
    )


def test_a_window_of_n_and_one_cut_at_the_newest_slot() -> None:
    fold = _fold([0, 3], [1, 2, 3, 4, 5], [0] * 5, [1, 2, 3, 4, -1], n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [1 + 0.5 * 2 + 0.25 * 3, 4 + 0.5 * 5]  # 2.75, 6.5
    assert fold.last_B.tolist() == [2, 4] and fold.steps_B.tolist() == [3, 2]
    assert fold.discounts_B.tolist() == [0.125, 0.25]


def test_a_termination_ends_the_window_and_its_flag_masks_the_bootstrap() -> None:
    fold = _fold([0], [1, 2, 3], [0, 1, 0], [1, -1, -1], n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [2.0] and fold.last_B.tolist() == [1] and fold.discounts_B.tolist() == [0.25]
    # Even if a storage left a link after a termination, the window stops there.
    fold = _fold([0], [1, 2, 3], [0, 1, 0], [1, 2, -1], n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [2.0] and fold.last_B.tolist() == [1]


def test_a_truncation_ends_the_window_and_is_bootstrapped_from_its_real_final_observation() -> None:
    # The storage writes no link after an episode's last transition; terminated stays 0.
    fold = _fold([0], [1, 2, 3], [0, 0, 0], [1, -1, -1], n=5, gamma=0.9)
    assert fold.returns_B[0] == np.float32(1) + np.float32(0.9) * np.float32(2)
    assert fold.last_B.tolist() == [1] and fold.steps_B.tolist() == [2]
    assert fold.discounts_B[0] == np.float32(0.9) * np.float32(0.9)


def test_interleaved_vector_env_streams_and_wrap_around() -> None:
    # Two envs stepped together: env A at slots 0, 2, 4 and env B at 1, 3, 5.
    fold = _fold([0, 1], [1, 10, 2, 20, 3, 30], [0] * 6, [2, 3, 4, 5, -1, -1], n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [1 + 0.5 * 2 + 0.25 * 3, 10 + 0.5 * 20 + 0.25 * 30]
    assert fold.last_B.tolist() == [4, 5]
    # A ring of 4 that wrapped: the stream runs through slots 2, 3, 0, 1 (the newest).
    fold = _fold([3, 2], [5, 6, 1, 2], [0] * 4, [1, -1, 3, 0], n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [2 + 0.5 * 5 + 0.25 * 6, 1 + 0.5 * 2 + 0.25 * 5]
    assert fold.last_B.tolist() == [1, 0]


def test_one_step_is_the_stored_transition() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.standard_normal(50).astype(F32)
    slots = rng.integers(0, 50, 64)
    fold = fold_n_step(
        slots, rewards_S=rewards, terminated_S=np.zeros(50, bool), next_S=np.arange(1, 51) % 50, n=1, gamma=0.99
    )
    assert np.array_equal(fold.returns_B, rewards[slots]) and np.array_equal(fold.last_B, slots)
    assert (fold.discounts_B == np.float32(0.99)).all() and (fold.steps_B == 1).all()


def test_vectorised_folding_equals_a_slow_loop() -> None:
    rng = np.random.default_rng(1)
    size, n, gamma = 200, 5, 0.97
    rewards = rng.standard_normal(size).astype(F32)
    terminated = rng.random(size) < 0.05
    next_ = np.where(rng.random(size) < 0.1, -1, rng.integers(0, size, size))
    slots = rng.integers(0, size, 500)
    fold = fold_n_step(slots, rewards_S=rewards, terminated_S=terminated, next_S=next_, n=n, gamma=gamma)
    for b, slot in enumerate(slots):
        total, discount, last, steps = rewards[slot], np.float32(gamma), slot, 1
        while steps < n and next_[last] >= 0 and not terminated[last]:
            last = next_[last]
            total = np.float32(total + discount * rewards[last])
            discount = np.float32(discount * np.float32(gamma))
            steps += 1
        assert (fold.returns_B[b], fold.last_B[b], fold.discounts_B[b], fold.steps_B[b]) == (
            total,
            last,
            discount,
            steps,
        )


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        _fold([0], [1], [0], [-1], n=0, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        _fold([0], [1], [0], [-1], n=2, gamma=1.5)


def _steps(replay: ReplayBuffer, rows: list[tuple[list[float], list[bool], list[bool], list[bool]]]) -> None:
    """Add steps of two envs: (rewards, terminated, truncated, valid); obs = 10 * step + env."""
    for t, (rewards, terminated, truncated, valid) in enumerate(rows):
        obs = np.array([[10.0 * t], [10.0 * t + 1]], dtype=np.float32)
        replay.add(
            obs,
            np.array([0, 1]),
            np.array(rewards, F32),
            obs + 100,
            np.array(terminated),
            np.array(truncated),
            np.array(valid),
        )


def test_the_ring_links_each_env_stream_and_folds_n_step_batches() -> None:
    replay = ReplayBuffer(16, (1,), np.float32, num_envs=2, n_step=3, gamma=0.5)
    T, F = True, False
    _steps(
        replay,
        [
            ([1, 10], [F, F], [F, F], [T, T]),  # slots 0 (env 0), 1 (env 1)
            ([2, 20], [T, F], [F, F], [T, T]),  # slot 2: env 0 terminates; slot 3
            ([0, 30], [F, F], [F, T], [F, T]),  # env 0 only resets (not stored); slot 4: env 1 truncated
            ([3, 0], [F, F], [F, F], [T, F]),  # slot 5: env 0's new episode; env 1 resets
            ([4, 40], [F, F], [F, F], [T, T]),  # slots 6, 7
        ],
    )
    assert replay.next_slot[:8].tolist() == [2, 3, -1, 4, -1, 6, -1, -1]
    batch = replay.gather(np.array([0, 1, 5]))
    assert batch.rewards.tolist() == [1 + 0.5 * 2, 10 + 0.5 * 20 + 0.25 * 30, 3 + 0.5 * 4]
    assert batch.discounts is not None and batch.discounts.tolist() == [0.25, 0.125, 0.25]
    assert batch.terminated.tolist() == [1.0, 0.0, 0.0]  # env 0's window ends in its termination
    assert batch.next_obs[:, 0].tolist() == [110.0, 121.0, 140.0]  # s' of slots 2, 4 (the real final obs), 6
    assert batch.obs[:, 0].tolist() == [0.0, 1.0, 30.0]

    restored = ReplayBuffer(16, (1,), np.float32, num_envs=2, n_step=3, gamma=0.5)
    restored.load_state_dict(replay.state_dict())
    again = restored.gather(np.array([0, 1, 5]))
    for name, a, b in zip(Batch._fields, batch, again, strict=True):
        assert (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b)), name


def test_links_follow_the_ring_around_and_one_step_keeps_none() -> None:
    replay = ReplayBuffer(4, (1,), np.float32, n_step=3, gamma=0.5)
    for t in range(6):  # slots 0..3, then t=4 -> slot 0 and t=5 -> slot 1
        replay.add(
            np.array([[t]], F32),
            np.array([0]),
            np.array([t], F32),
            np.array([[t + 1]], F32),
            np.array([False]),
            np.array([False]),
        )
    assert replay.next_slot.tolist() == [1, -1, 3, 0]  # t2 -> t3 -> t4 -> t5 (newest)
    batch = replay.gather(np.array([2]))
    assert batch.rewards.tolist() == [2 + 0.5 * 3 + 0.25 * 4] and batch.next_obs.tolist() == [[5.0]]
    with pytest.raises(ValueError, match="one row per env"):
        replay.add(
            np.zeros((2, 1), F32),
            np.zeros(2, int),
            np.zeros(2, F32),
            np.zeros((2, 1), F32),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
    one_step = ReplayBuffer(4, (1,), np.float32)
    one_step.add(
        np.zeros((3, 1), F32),
        np.zeros(3, int),
        np.ones(3, F32),
        np.zeros((3, 1), F32),
        np.zeros(3, bool),
        np.zeros(3, bool),
    )
    batch = one_step.gather(np.array([0, 2]))
    assert batch.discounts is None and batch.weights is None and "next_slot" not in one_step.state_dict()


def test_consecutive_windows_fold_up_to_the_first_missing_link() -> None:
    from dueldqn.replay.nstep import fold_consecutive

    rewards = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], F32)
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    linked = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)  # the last column is never read
    fold = fold_consecutive(rewards, terminated, linked, n=3, gamma=0.5)
    assert fold.returns_B.tolist() == [1 + 0.5 * 2 + 0.25 * 3, 4 + 0.5 * 5, 7]  # row 1 stops at its termination
    assert fold.last_B.tolist() == [2, 1, 0] and fold.steps_B.tolist() == [3, 2, 1]
    assert fold.discounts_B.tolist() == [0.125, 0.25, 0.5]
    with pytest.raises(ValueError, match=r"\(B, n=4\)"):
        fold_consecutive(rewards, terminated, linked, n=4, gamma=0.5)
