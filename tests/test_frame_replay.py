"""FrameReplayBuffer against the naive ReplayBuffer on random frame streams from vector envs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dueldqn.replay import Batch, FrameReplayBuffer, ReplayBuffer

OBS_SHAPE = (4, 3, 5)  # small, non-square frames: C=4 stacked 3x5 frames
C = OBS_SHAPE[0]

# How an episode's first stack is made, and how many slots the frame replay spends to store it
# before its first transition (the memory contract of the module docstring).
RESET_KINDS = {
    "repeat": 1,  # gymnasium FrameStackObservation default: the first frame four times
    "zero": 2,  # padding_type="zero": three zero frames, then the first frame
    "arbitrary": C,  # any other stack
    "shifted": 1,  # the previous final stack plus one frame (EnvPool after a lost life)
    "same": 0,  # equal to the previous final stack
}

Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _frame(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(1, 256, size=OBS_SHAPE[1:], dtype=np.uint8)


def _reset_stack(kind: str, final_CHW: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "repeat":
        return np.stack([_frame(rng)] * C)
    if kind == "zero":
        return np.concatenate([np.zeros((C - 1, *OBS_SHAPE[1:]), np.uint8), _frame(rng)[None]])
    if kind == "arbitrary":
        return np.stack([_frame(rng) for _ in range(C)])
    if kind == "shifted":
        return np.concatenate([final_CHW[1:], _frame(rng)[None]])
    return final_CHW.copy()


def vector_stream(num_envs: int, steps: int, rng: np.random.Generator) -> Iterator[tuple[Step, list[int]]]:
    """What a gymnasium vector env with next-step autoreset gives a training loop, step by step.

    Yields the ``add`` arguments and, per env, the slots the frame replay should spend: -1 for
    an autoreset step (nothing stored), else lead slots for an episode start (0 otherwise).
    Episodes end by termination or truncation at random; one frame in five repeats the last.
    """
    obs_N = np.stack([_reset_stack("repeat", np.zeros(OBS_SHAPE, np.uint8), rng) for _ in range(num_envs)])
    lead_N = [RESET_KINDS["repeat"]] * num_envs
    ended_N = np.zeros(num_envs, bool)
    kinds = list(RESET_KINDS)
    for _ in range(steps):
        next_obs_N = np.empty_like(obs_N)
        terminated_N = np.zeros(num_envs, bool)
        truncated_N = np.zeros(num_envs, bool)
        valid_N = ~ended_N
        slots = []
        for n in range(num_envs):
            if ended_N[n]:  # the autoreset step: garbage action, reward 0, a fresh first stack
                kind = kinds[rng.integers(len(kinds))]
                next_obs_N[n] = _reset_stack(kind, obs_N[n], rng)
                slots.append(-1)
                lead_N[n] = RESET_KINDS[kind]
                continue
            frame = obs_N[n, -1] if rng.random() < 0.2 else _frame(rng)
            next_obs_N[n] = np.concatenate([obs_N[n, 1:], frame[None]])
            terminated_N[n] = rng.random() < 0.06
            truncated_N[n] = not terminated_N[n] and rng.random() < 0.04
            slots.append(lead_N[n])
            lead_N[n] = 0
        actions_N = rng.integers(0, 6, size=num_envs)
        rewards_N = rng.normal(size=num_envs).astype(np.float32)
        yield (obs_N, actions_N, rewards_N, next_obs_N, terminated_N, truncated_N, valid_N), slots
        obs_N = next_obs_N
        ended_N = valid_N & (terminated_N | truncated_N)


def _assert_batches_equal(got: Batch, want: Batch) -> None:
    np.testing.assert_array_equal(got.obs, want.obs)
    np.testing.assert_array_equal(got.actions, want.actions)
    np.testing.assert_array_equal(got.rewards, want.rewards)
    np.testing.assert_array_equal(got.next_obs, want.next_obs)
    np.testing.assert_array_equal(got.terminated, want.terminated)
    assert (got.discounts is None) == (want.discounts is None)
    if got.discounts is not None:
        np.testing.assert_array_equal(got.discounts, want.discounts)
    assert got.obs.dtype == np.uint8 and got.next_obs.dtype == np.uint8
    assert got.actions.dtype == np.int64 and got.rewards.dtype == np.float32
    assert got.terminated.dtype == np.float32


def _tail(naive: ReplayBuffer, k: int) -> Batch:
    n = len(naive)
    if naive.n_step > 1:  # the n-step fold of the same transitions
        return naive.gather(np.arange(n - k, n))
    return Batch(
        naive.obs[n - k : n],
        naive.actions[n - k : n],
        naive.rewards[n - k : n],
        naive.next_obs[n - k : n],
        naive.terminated[n - k : n],
    )


def _fill(
    num_envs: int, capacity: int, steps: int, seed: int, n_step: int = 1
) -> tuple[FrameReplayBuffer, list[ReplayBuffer]]:
    """Feed one random stream into a frame replay and a naive replay per env, checking every step."""
    rng = np.random.default_rng(seed)
    frame = FrameReplayBuffer(capacity, OBS_SHAPE, np.uint8, num_envs=num_envs, n_step=n_step, gamma=0.9)
    naive_per_env = [ReplayBuffer(steps, OBS_SHAPE, np.uint8, n_step=n_step, gamma=0.9) for _ in range(num_envs)]
    slot_log: list[list[bool]] = [[] for _ in range(num_envs)]  # per env: does slot k hold a transition
    window = frame.slots - C
    for args, slots in vector_stream(num_envs, steps, rng):
        frame.add(*args)
        for n, naive in enumerate(naive_per_env):
            naive.add(*(a[n : n + 1] for a in args))
            if slots[n] >= 0:
                slot_log[n] += [False] * slots[n] + [True]
        idx = frame.valid_indices()
        env_of = idx // frame.slots
        assert len(frame) == len(idx)
        for n, naive in enumerate(naive_per_env):
            mine = idx[env_of == n]
            # exactly the transitions in the newest L - C slots of this env: nothing lost, nothing stale
            assert len(mine) == sum(slot_log[n][-window:])
            _assert_batches_equal(frame.gather(mine), _tail(naive, len(mine)))
    return frame, naive_per_env


@pytest.mark.parametrize("num_envs", [1, 3])
def test_rebuilt_transitions_equal_the_naive_ones_at_every_step(num_envs: int) -> None:
    capacity = 30 * num_envs  # 30 slots per env; 400 steps wrap it about a dozen times
    frame, naive_per_env = _fill(num_envs, capacity, steps=400, seed=num_envs)
    assert all(head > 10 * frame.slots for head in frame.head_N)
    assert len(frame) > 0.5 * capacity
    assert sum(len(naive) for naive in naive_per_env) > 300 * num_envs


@pytest.mark.parametrize("num_envs", [1, 3])
def test_n_step_batches_equal_the_naive_replays_folds_at_every_step(num_envs: int) -> None:
    """The naive replay links each env's transitions explicitly; the frame replay reads the ring's order.

    The random streams end episodes by termination and truncation, skip autoreset steps, start
    streams in every way (lead slots, none for a stack equal to the last one) and wrap the ring.
    """
    frame, _ = _fill(num_envs, 30 * num_envs, steps=400, seed=10 + num_envs, n_step=4)
    assert all(head > 10 * frame.slots for head in frame.head_N)
    batch = frame.gather(frame.valid_indices())
    assert batch.discounts is not None
    # every window length occurs: cut by an episode's end or the newest slot, or all n = 4 folded
    assert set(np.round(np.log(batch.discounts) / np.log(0.9)).astype(int)) == {1, 2, 3, 4}


def test_sampling_is_seeded_uniform_and_returns_stored_transitions() -> None:
    frame, _ = _fill(num_envs=3, capacity=90, steps=300, seed=7)
    stored = frame.gather(frame.valid_indices())
    keys = {o.tobytes() + n.tobytes(): i for i, (o, n) in enumerate(zip(stored.obs, stored.next_obs, strict=True))}
    assert len(keys) == len(frame)  # random frames: every stored transition is unique

    batch = frame.sample(64, np.random.default_rng(123))
    again = frame.sample(64, np.random.default_rng(123))
    _assert_batches_equal(batch, again)
    assert batch.obs.shape == (64, *OBS_SHAPE)
    rows = [keys[o.tobytes() + n.tobytes()] for o, n in zip(batch.obs, batch.next_obs, strict=True)]
    _assert_batches_equal(batch, Batch(*(field[rows] for field in stored[:5])))

    big = frame.sample(100 * len(frame), np.random.default_rng(0))
    counts = np.bincount(
        [keys[o.tobytes() + n.tobytes()] for o, n in zip(big.obs, big.next_obs, strict=True)], minlength=len(frame)
    )
    assert counts.min() > 0
    assert counts.std() / counts.mean() < 0.2  # binomial: about 1 / sqrt(100) = 0.1


def test_a_hand_built_stream_wraps_and_forgets_exactly() -> None:
    """One env, one episode of 1x1 frames 1, 2, 3, ...: obs_t = (t-3, t-2, t-1, t) clamped at 1."""
    buf = FrameReplayBuffer(capacity=12, obs_shape=(4, 1, 1), num_envs=1)
    stack = np.ones((4, 1, 1), np.uint8)  # the reset stack (1, 1, 1, 1)
    for t in range(1, 31):
        nxt = np.concatenate([stack[1:], np.full((1, 1, 1), t + 1, np.uint8)])
        buf.add(
            stack[None], np.array([t % 3]), np.array([t], np.float32), nxt[None], np.array([False]), np.array([False])
        )
        stack = nxt
        if t == 2:  # 1 lead slot + 2 transitions: nothing forgotten yet
            assert len(buf) == 2
            np.testing.assert_array_equal(buf.gather(buf.valid_indices()).obs[:, :, 0, 0], [[1, 1, 1, 1], [1, 1, 1, 2]])
    # 31 slots written into a ring of 12; the 4 oldest are not sampled: transitions 23..30 remain
    assert len(buf) == 12 - 4
    got = buf.gather(buf.valid_indices())
    np.testing.assert_array_equal(got.rewards, np.arange(23, 31, dtype=np.float32))
    np.testing.assert_array_equal(got.actions, np.arange(23, 31) % 3)
    np.testing.assert_array_equal(got.obs[0, :, 0, 0], [20, 21, 22, 23])
    np.testing.assert_array_equal(got.next_obs[-1, :, 0, 0], [28, 29, 30, 31])
    np.testing.assert_array_equal(buf.sample(5, np.random.default_rng(0)).obs[:, -1, 0, 0] >= 23, True)


def test_bytes_per_transition_for_atari_frames() -> None:
    capacity = 100_000
    buf = FrameReplayBuffer(capacity, (4, 84, 84), np.uint8, num_envs=1)  # allocated lazily, never touched
    per_slot = 84 * 84 + 2 + 4 + 1 + 1  # frame, int16 action, float32 reward, uint8 depth, uint8 flags
    per_env = 4 * 84 * 84 + 3 * 8  # the previous s', three int64 counters
    assert buf.nbytes == capacity * per_slot + per_env
    assert buf.bytes_per_transition() == pytest.approx(7064 + 28248 / capacity)
    assert buf.bytes_per_transition() <= 7100
    naive_per_transition = 2 * 4 * 84 * 84 + 8 + 4 + 4
    assert naive_per_transition / buf.bytes_per_transition() > 7.99


def test_state_dict_round_trip_through_np_save(tmp_path: Path) -> None:
    frame, _ = _fill(num_envs=2, capacity=40, steps=120, seed=3)
    state = frame.state_dict()
    for name, array in state.items():
        np.save(tmp_path / f"{name}.npy", array, allow_pickle=False)
    loaded = {name: np.load(tmp_path / f"{name}.npy", allow_pickle=False) for name in state}
    restored = FrameReplayBuffer(40, OBS_SHAPE, np.uint8, num_envs=2)
    restored.load_state_dict(loaded)

    assert len(restored) == len(frame)
    np.testing.assert_array_equal(restored.valid_indices(), frame.valid_indices())
    _assert_batches_equal(restored.sample(32, np.random.default_rng(5)), frame.sample(32, np.random.default_rng(5)))
    # both go on identically with the same further steps
    for args, _ in vector_stream(2, 50, np.random.default_rng(99)):
        frame.add(*args)
        restored.add(*args)
    _assert_batches_equal(restored.gather(restored.valid_indices()), frame.gather(frame.valid_indices()))
    with pytest.raises(ValueError, match="capacity 40"):
        FrameReplayBuffer(60, OBS_SHAPE, np.uint8, num_envs=2).load_state_dict(loaded)


def test_misuse_is_refused_with_a_message() -> None:
    buf = FrameReplayBuffer(40, OBS_SHAPE, np.uint8, num_envs=2)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, size=(2, *OBS_SHAPE), dtype=np.uint8)
    unrelated = rng.integers(0, 256, size=(2, *OBS_SHAPE), dtype=np.uint8)
    flags = np.zeros(2, bool)
    with pytest.raises(ValueError, match="valid_N False"):
        buf.add(obs, np.array([0, 1]), np.zeros(2), unrelated, flags, flags)  # an autoreset step kept
    with pytest.raises(ValueError, match=r"shape \(2, 4, 3, 5\)"):
        buf.add(obs[:1], np.array([0]), np.zeros(1), obs[:1], flags[:1], flags[:1])
    shifted = np.concatenate([obs[:, 1:], obs[:, :1]], axis=1)
    with pytest.raises(ValueError, match="integer actions"):
        buf.add(obs, np.array([0, -1]), np.zeros(2), shifted, flags, flags)
    assert len(buf) == 0
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1, rng)
    with pytest.raises(ValueError, match="at least 10 slots per env"):
        FrameReplayBuffer(16, OBS_SHAPE, np.uint8, num_envs=2)
