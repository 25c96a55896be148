"""n-step returns over the frame replay, against targets computed by hand.

Frames are 1x1 pixels holding a number and stacks have C = 2 frames, so ``(a, b)`` is the stack of
frames a and b; the reward of the transition ending in frame ``f`` is written next to it.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_frame_replay import OBS_SHAPE, vector_stream

from dueldqn.replay import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer

F, T = False, True


def _stack(a: int, b: int) -> np.ndarray:
    return np.array([[[a]], [[b]]], dtype=np.uint8)  # (C=2, 1, 1)


def _add(
    buf: FrameReplayBuffer | PrioritizedReplay,
    s: tuple[int, int],
    reward: float,
    s_next: tuple[int, int],
    terminated: bool = F,
    truncated: bool = F,
    valid: bool = T,
) -> None:
    buf.add(
        _stack(*s)[None],
        np.array([1]),
        np.array([reward], np.float32),
        _stack(*s_next)[None],
        np.array([terminated]),
        np.array([truncated]),
        np.array([valid]),
    )


def _episodes(buf: FrameReplayBuffer | PrioritizedReplay) -> None:
    """Three episodes of one env: ended by a termination, by a truncation, and still running.

    Slots: 0 lead (frame 1); 1-4 the first episode; 5 lead (frame 10); 6-7 the second; 8-9 the
    third, whose first stack equals the second's final one (no lead slot between them).
    """
    _add(buf, (1, 1), 1, (1, 2))
    _add(buf, (1, 2), 2, (2, 3))
    _add(buf, (2, 3), 3, (3, 4))
    _add(buf, (3, 4), 4, (4, 5), terminated=T)
    _add(buf, (4, 5), 0, (10, 10), valid=F)  # the autoreset step: not stored
    _add(buf, (10, 10), 5, (10, 11))
    _add(buf, (10, 11), 6, (11, 12), truncated=T)
    _add(buf, (11, 12), 0, (11, 12), valid=F)  # autoreset to a stack equal to the final one
    _add(buf, (11, 12), 7, (12, 13))
    _add(buf, (12, 13), 8, (13, 14))


def test_windows_stop_at_terminations_truncations_and_the_newest_slot() -> None:
    buf = FrameReplayBuffer(12, (2, 1, 1), np.uint8, n_step=3, gamma=0.5)
    _episodes(buf)
    assert buf.valid_indices().tolist() == [1, 2, 3, 4, 6, 7, 8, 9]
    batch = buf.gather(np.array([1, 2, 3, 4, 6, 7, 8, 9]))
    assert batch.rewards.tolist() == [
        1 + 0.5 * 2 + 0.25 * 3,  # three transitions, bootstrapped from (3, 4)
        2 + 0.5 * 3 + 0.25 * 4,  # three, the last terminal
        3 + 0.5 * 4,  # stops at the termination
        4,
        5 + 0.5 * 6,  # stops at the truncation, bootstrapped from its real final stack (11, 12)
        6,
        7 + 0.5 * 8,  # stops at the newest slot: the third episode did not cross into the second
        8,
    ]
    assert batch.discounts is not None
    assert batch.discounts.tolist() == [0.125, 0.125, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]
    assert batch.terminated.tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    assert batch.obs[:, :, 0, 0].tolist() == [[1, 1], [1, 2], [2, 3], [3, 4], [10, 10], [10, 11], [11, 12], [12, 13]]
    assert batch.next_obs[:, :, 0, 0].tolist() == [
        [3, 4],
        [4, 5],
        [4, 5],
        [4, 5],
        [11, 12],
        [11, 12],
        [13, 14],
        [13, 14],
    ]
    assert batch.actions.tolist() == [1] * 8 and batch.indices.tolist() == [1, 2, 3, 4, 6, 7, 8, 9]  # type: ignore[union-attr]


def test_one_step_keeps_the_stored_transitions() -> None:
    buf = FrameReplayBuffer(12, (2, 1, 1), np.uint8)
    _episodes(buf)
    batch = buf.gather(buf.valid_indices())
    assert batch.discounts is None
    assert batch.rewards.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert batch.terminated.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]  # a truncation is not terminal
    assert batch.next_obs[:, :, 0, 0].tolist() == [
        [1, 2],
        [2, 3],
        [3, 4],
        [4, 5],
        [10, 11],
        [11, 12],
        [12, 13],
        [13, 14],
    ]


def test_windows_run_across_the_end_of_a_wrapped_ring() -> None:
    buf = FrameReplayBuffer(8, (2, 1, 1), np.uint8, n_step=3, gamma=0.5)  # 8 slots, the 2 oldest not sampled
    for t in range(1, 21):  # one episode: the lead slot (frame 1), then transition t in slot t % 8
        _add(buf, (max(t - 1, 1), t), t, (t, t + 1))
    assert buf.valid_indices().tolist() == [7, 0, 1, 2, 3, 4]  # transitions 15 ... 20
    batch = buf.gather(np.array([7, 0, 3, 4]))
    assert batch.rewards.tolist() == [15 + 0.5 * 16 + 0.25 * 17, 16 + 0.5 * 17 + 0.25 * 18, 19 + 0.5 * 20, 20]
    assert batch.discounts.tolist() == [0.125, 0.125, 0.25, 0.5]  # type: ignore[union-attr]
    assert batch.obs[:, :, 0, 0].tolist() == [[14, 15], [15, 16], [18, 19], [19, 20]]
    assert batch.next_obs[:, :, 0, 0].tolist() == [[17, 18], [18, 19], [20, 21], [20, 21]]


def test_windows_stay_in_their_own_envs_stream() -> None:
    buf = FrameReplayBuffer(16, (2, 1, 1), np.uint8, num_envs=2, n_step=3, gamma=0.5)  # 8 slots per env
    for t in range(1, 5):  # env 0: frames 1, 2, ..., rewards t; env 1: frames 101, ..., rewards 10 t
        s, s_next = (
            np.stack([_stack(max(t - 1, 1), t), _stack(100 + max(t - 1, 1), 100 + t)]),
            np.stack([_stack(t, t + 1), _stack(100 + t, 101 + t)]),
        )
        terminated = np.array([t == 2, F])  # env 0's episode ends at its second transition
        valid = np.array([t != 3, T])  # and its autoreset step is t = 3
        buf.add(s, np.array([0, 1]), np.array([t, 10 * t], np.float32), s_next, terminated, np.array([F, F]), valid)
    # env 0: lead 0, transitions 1, 2 in slots 1, 2; then t = 4 starts from (3, 4), the last s' (2, 3)
    # shifted by one frame (as EnvPool after a lost life): lead slot 3 (frame 4), transition 4 in slot 4.
    # env 1: lead 8, transitions 1-4 in slots 9-12.
    assert buf.valid_indices().tolist() == [1, 2, 4, 9, 10, 11, 12]
    batch = buf.gather(np.array([1, 2, 4, 9, 11]))
    assert batch.rewards.tolist() == [1 + 0.5 * 2, 2, 4, 10 + 0.5 * 20 + 0.25 * 30, 30 + 0.5 * 40]
    assert batch.terminated.tolist() == [1, 1, 0, 0, 0]
    assert batch.next_obs[:, :, 0, 0].tolist() == [[2, 3], [2, 3], [4, 5], [103, 104], [104, 105]]


def test_n_step_frames_agree_with_the_linked_ring_on_a_vector_stream() -> None:
    """Every stored transition of 3 envs, folded both ways (links vs ring order), after 300 steps."""
    rng = np.random.default_rng(4)
    frames = FrameReplayBuffer(3 * 400, OBS_SHAPE, np.uint8, num_envs=3, n_step=5, gamma=0.97)  # never wraps
    linked = ReplayBuffer(900, OBS_SHAPE, np.uint8, num_envs=3, n_step=5, gamma=0.97)
    env_of = []  # the env of each transition the linked ring stores, in its order
    for args, _ in vector_stream(3, 300, rng):
        frames.add(*args)
        linked.add(*args)
        env_of += np.flatnonzero(args[-1]).tolist()
    got, want = frames.gather(frames.valid_indices()), linked.gather(np.arange(len(linked)))
    order = np.argsort(env_of, kind="stable")  # env by env, in time order, as valid_indices lists them
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "discounts"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name)[order], err_msg=name)


def test_prioritized_replay_over_n_step_frames_samples_folded_batches_and_round_trips() -> None:
    storage = FrameReplayBuffer(12, (2, 1, 1), np.uint8, n_step=3, gamma=0.5)
    replay = PrioritizedReplay(storage, alpha=0.6)
    _episodes(replay)
    batch = replay.sample(64, np.random.default_rng(0), beta=0.5)
    assert batch.indices is not None
    slots = batch.indices % storage.num_slots
    np.testing.assert_array_equal(batch.rewards, storage.gather(slots).rewards)
    assert set(slots.tolist()) == {1, 2, 3, 4, 6, 7, 8, 9}
    assert batch.discounts is not None and set(batch.discounts.tolist()) == {0.125, 0.25, 0.5}

    # a checkpoint round trip: the n-step windows come back with the flags (no links to save)
    rng = np.random.default_rng(3)
    full = PrioritizedReplay(FrameReplayBuffer(48, OBS_SHAPE, np.uint8, num_envs=2, n_step=3), alpha=0.6)
    for step, (args, _) in enumerate(vector_stream(2, 60, rng)):
        full.add(*args)
        if step % 4 == 3:
            drawn = full.sample(8, rng, beta=0.5)
            full.update_priorities(drawn.indices, rng.exponential(size=8))
    restored = PrioritizedReplay(FrameReplayBuffer(48, OBS_SHAPE, np.uint8, num_envs=2, n_step=3), alpha=0.6)
    restored.load_state_dict(full.state_dict())
    want, got = (
        full.sample(32, np.random.default_rng(1), beta=0.5),
        restored.sample(32, np.random.default_rng(1), beta=0.5),
    )
    for name, a, b in zip(want._fields, want, got, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert want.discounts is not None and (want.discounts < 0.98).any()  # some windows of 3 (0.99 ** 3)


def test_bad_n_step_is_refused() -> None:
    with pytest.raises(ValueError, match="n_step"):
        FrameReplayBuffer(12, (2, 1, 1), np.uint8, n_step=0)
