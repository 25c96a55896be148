"""Replay memory for stacked frames that stores every frame once (Mnih et al., 2015; Castro et al., 2018).

Consecutive stacked observations share all but one frame: ``s_{t+1} = (f_{t-2}, f_{t-1}, f_t, f_{t+1})``
repeats three of the four frames of ``s_t``, and ``s_{t+1}`` is both the next observation of
step ``t`` and the observation of step ``t + 1``. Storing ``(s, s')`` pairs keeps every frame
eight times; :class:`FrameReplayBuffer` keeps it once and rebuilds the stacks by index, as the
DQN paper's replay and Dopamine's ``OutOfGraphReplayBuffer`` do, with the same interface and
``Batch`` as :class:`dueldqn.replay.ReplayBuffer`.

Shape suffixes as in :mod:`dueldqn.networks`, plus ``L`` slots per env, ``K`` / ``V`` / ``S``
subsets of the envs and ``O = C + 1`` frames per rebuilt transition.

Layout: env ``n`` of ``N`` owns a ring of ``L = ceil(capacity / N)`` slots. A slot holds one
frame and, where a transition ends there, that transition's action, reward and ``terminated``;
its ``s'`` ends at the slot and its ``s`` at the slot before. Per slot, ``depth`` =
``min(slots since the stream's first slot, C)``: a stack never reaches further back than its
stream's first slot and repeats that frame instead, which reproduces the stack gymnasium's
``FrameStackObservation`` returns on reset (the first frame, repeated; its default
``padding_type="reset"``).

Where a new stream starts is read off the frames, not trusted to flags: a transition continues
its env's stream when its ``s`` equals that env's previous ``s'`` (within an episode, always).
Otherwise its ``s`` is stored first, as "lead" slots that hold no transition: one frame when
``s`` shifts the previous ``s'`` by one frame (EnvPool after a lost life), else the frames of
``s`` from the last of its repeated leading frames on (one frame for a ``"reset"``-padded stack,
two for zero padding, ``C`` for any other stack). So nothing from before an episode's start
leaks into its stacks, and the real final ``s'`` of a truncated (or terminated) episode is
kept. The next-step autoreset step of a vector env (``valid_N`` False) is never stored.

Wrap-around: the ``C`` oldest slots of a full ring are never sampled, so the frames a sampled
stack reaches back to (at most ``C`` slots) have never been overwritten.

n-step returns (:mod:`dueldqn.replay.nstep`, folded when sampled): a stream's transitions sit
in consecutive slots of its env's ring, so no links are stored. The transition in slot ``p + 1``
continues the one in ``p`` when ``p`` is not its env's newest slot, ``p + 1`` holds a transition
(a lead slot starts a new stream) and ``p``'s did not end its episode (the ``terminated`` and
``truncated`` flags; the autoreset step is never stored). The window only reads slots newer than
``p``, which the ring has not overwritten.

Action masks (``mask_actions = A > 0``): a slot where a transition ends also keeps the legal actions
of its ``s'`` as packed bits, ``ceil(A / 8)`` bytes (3 B for Atari's 18 actions); an n-step batch
reads those of the window's last slot, the state it bootstraps from. Without masks nothing is kept.

Memory for ``(4, 84, 84)`` ``uint8`` observations, per slot: frame ``84 * 84 = 7056`` B, action
(int16) 2 B, reward (float32) 4 B, depth (uint8) 1 B, flags (uint8: transition, terminated,
truncated) 1 B: 7,064 B. Per env: the previous ``s'`` (28,224 B) and three int64 counters. For 1M slots in one
env that is 7,064.03 B (6.90 KiB) per transition, against 2 * 28,224 + 8 + 4 + 4 = 56,464 B
for :class:`~dueldqn.replay.ReplayBuffer` (8.0x). Each episode also takes its lead slots (one
for gymnasium's Atari envs), so an episode of ``T`` steps costs ``7,064 * (T + 1) / T`` B per
transition: 7,135 B for 100-step episodes, 7,078 B for 500-step ones, 7,071 B at 1,000 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dueldqn.replay.batch import NO_SLOTS, Batch, SlotChanges
from dueldqn.replay.nstep import fold_consecutive

_TRANSITION = np.uint8(1)  # flags bit 0: a transition ends in this slot
_TERMINATED = np.uint8(2)  # flags bit 1: that transition's s' is terminal
_TRUNCATED = np.uint8(4)  # flags bit 2: that transition's episode was cut by a time limit (s' bootstrapped)
_ACTION_DTYPE = np.int16
# Checkpoint key -> attribute: the per-slot arrays (saved up to the slots written so far) and the per-env ones.
_SLOT_ARRAYS = {
    "frames": "frames",
    "actions": "actions_NL",
    "rewards": "rewards_NL",
    "depth": "depth_NL",
    "flags": "flags_NL",
}
_ENV_ARRAYS = {"last_next_obs": "last_next_obs_N", "head": "head_N", "stream_start": "stream_start_N", "size": "size_N"}


def _rows_equal(a_K: np.ndarray, b_K: np.ndarray) -> np.ndarray:
    """``(K,)`` bool: whether row ``k`` of ``a_K`` equals row ``k`` of ``b_K`` everywhere."""
    return np.asarray((a_K == b_K).reshape(len(a_K), -1).all(axis=1))


class FrameReplayBuffer:
    """Uniform replay over stacked frames ``(C, *frame_shape)``, each frame stored once.

    Same interface as :class:`dueldqn.replay.ReplayBuffer`; the module docstring gives the
    layout and the memory arithmetic (7,064 B per transition for ``(4, 84, 84)`` uint8).

    Args:
        capacity: slots in all, ``ceil(capacity / num_envs)`` per env. Each slot holds at most
            one transition; episode starts and the ``C`` oldest slots per env hold none, so
            ``len()`` of a full buffer is a little below ``capacity``.
        obs_shape: ``(C, *frame_shape)``, stacked frames along the first axis.
        obs_dtype: dtype of the frames (kept until sampling).
        num_envs: ``N``, the number of parallel envs; :meth:`add` takes one row per env.
        n_step: fold up to this many transitions into each sampled one (1: one-step transitions).
        gamma: the discount of the n-step fold.
        mask_actions: keep each ``s'``'s action mask of this many actions, packed (0: no masks).

    Raises:
        ValueError: for a ring of fewer than ``2 * C + 2`` slots per env, ``obs_shape``
            with no frame axis, or ``n_step < 1``.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...] = (4, 84, 84),
        obs_dtype: np.dtype | type = np.uint8,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        mask_actions: int = 0,
    ) -> None:
        if n_step < 1:
            raise ValueError(f"n_step must be a positive number of transitions, got {n_step}")
        self.n_step, self.gamma = int(n_step), float(gamma)
        if len(obs_shape) < 2 or obs_shape[0] < 1:
            raise ValueError(f"FrameReplayBuffer needs stacked frames (C, *frame_shape), got obs_shape {obs_shape}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.num_envs = int(num_envs)
        self.stack = self.obs_shape[0]  # C
        self.slots = -(-self.capacity // self.num_envs)  # L, slots per env
        if self.slots < 2 * self.stack + 2:
            raise ValueError(
                f"replay capacity {capacity} gives {self.slots} slots per env for {num_envs} envs; "
                f"{self.stack}-frame stacks need at least {2 * self.stack + 2} slots per env"
            )
        n, length = self.num_envs, self.slots
        self.frames = np.zeros((n, length, *self.obs_shape[1:]), dtype=obs_dtype)  # (N, L, *frame_shape)
        self.actions_NL = np.zeros((n, length), dtype=_ACTION_DTYPE)
        self.rewards_NL = np.zeros((n, length), dtype=np.float32)
        self.depth_NL = np.zeros((n, length), dtype=np.uint8)  # min(slots since stream start, C)
        self.flags_NL = np.zeros((n, length), dtype=np.uint8)  # _TRANSITION | _TERMINATED | _TRUNCATED
        self.mask_actions = int(mask_actions)
        mask_bytes = -(-self.mask_actions // 8)
        self.mask_NLM = np.zeros((n, length if mask_actions else 0, mask_bytes), dtype=np.uint8)  # s' legal, packed
        self._slot_arrays = _SLOT_ARRAYS | ({"next_mask": "mask_NLM"} if mask_actions else {})
        self.last_next_obs_N = np.zeros((n, *self.obs_shape), dtype=obs_dtype)  # each env's previous s'
        self.head_N = np.zeros(n, dtype=np.int64)  # slots written by each env so far (not wrapped)
        self.stream_start_N = np.zeros(n, dtype=np.int64)  # head value at the current stream's first slot
        self.size_N = np.zeros(n, dtype=np.int64)  # sampleable transitions of each env

    # --- size and memory -------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.size_N.sum())

    def can_sample(self, min_size: int) -> bool:
        """Whether at least ``min_size`` transitions can be sampled (the warm-up rule)."""
        return len(self) >= min_size

    @property
    def num_slots(self) -> int:
        """Slots in the flat slot space ``env * L + slot`` of :meth:`gather`: ``N * L``."""
        return self.num_envs * self.slots

    @property
    def nbytes(self) -> int:
        """Bytes of all the arrays this buffer holds (allocated, touched or not)."""
        return int(sum(getattr(self, name).nbytes for name in (*self._slot_arrays.values(), *_ENV_ARRAYS.values())))

    def bytes_per_transition(self) -> float:
        """``nbytes / capacity``: 7,064.03 B for 1M ``(4, 84, 84)`` uint8 slots in one env."""
        return self.nbytes / self.capacity

    # --- writing ---------------------------------------------------------------------------

    def _window_start_N(self) -> np.ndarray:
        """Head value of each env's oldest sampleable slot: the ``C`` oldest of a ring are not."""
        return np.maximum(0, self.head_N - self.slots + self.stack)

    def _push(
        self,
        env_K: np.ndarray,
        frame_K: np.ndarray,
        depth_K: np.ndarray,
        flags_K: np.ndarray,
        actions_K: np.ndarray,
        rewards_K: np.ndarray,
        masks_KM: np.ndarray | None = None,
    ) -> SlotChanges:
        """Write one slot for each of the distinct envs ``env_K``, keeping ``size_N`` exact.

        ``masks_KM``: the packed action masks of the slots' ``s'`` (with ``mask_actions``; lead slots: zeros).

        Returns the flat slots: ``written`` where a transition was written, ``cleared`` the slots
        that left the sampleable window and those written without a transition.
        """
        head_K = self.head_N[env_K]
        leaving_K = head_K - self.slots + self.stack  # the slot that falls out of the window
        old_K = leaving_K >= 0
        left = NO_SLOTS
        if old_K.any():
            env_old = env_K[old_K]
            self.size_N[env_old] -= self.flags_NL[env_old, leaving_K[old_K] % self.slots] & _TRANSITION
            left = env_old * self.slots + leaving_K[old_K] % self.slots
        slot_K = head_K % self.slots
        self.frames[env_K, slot_K] = frame_K
        self.depth_NL[env_K, slot_K] = depth_K
        self.flags_NL[env_K, slot_K] = flags_K
        self.actions_NL[env_K, slot_K] = actions_K
        self.rewards_NL[env_K, slot_K] = rewards_K
        if self.mask_actions:
            self.mask_NLM[env_K, slot_K] = 0 if masks_KM is None else masks_KM
        self.size_N[env_K] += flags_K & _TRANSITION
        self.head_N[env_K] = head_K + 1
        flat_K = env_K.astype(np.int64) * self.slots + slot_K
        holds_K = (flags_K & _TRANSITION) != 0
        return SlotChanges(flat_K[holds_K], np.concatenate([left, flat_K[~holds_K]]))

    def _push_lead(self, env_K: np.ndarray, frame_K: np.ndarray, depth_K: np.ndarray) -> SlotChanges:
        """Write frames that only start a stack (no transition ends in their slots)."""
        zeros_K = np.zeros(len(env_K), dtype=np.uint8)
        return self._push(env_K, frame_K, depth_K, zeros_K, zeros_K.astype(_ACTION_DTYPE), zeros_K.astype(np.float32))

    def _start_streams(self, env_S: np.ndarray, obs_S: np.ndarray) -> list[np.ndarray]:
        """Store the observations ``obs_S`` that do not continue their env's previous ``s'``.

        Returns the flat slots this cleared (lead slots hold no transition).
        """
        c = self.stack
        cleared: list[np.ndarray] = []
        last_S = self.last_next_obs_N[env_S]
        shifted_S = (self.head_N[env_S] > 0) & _rows_equal(obs_S[:, :-1], last_S[:, 1:])
        if shifted_S.any():  # one new frame on top of the previous stack: the same stream goes on
            env_K = env_S[shifted_S]
            depth_K = np.minimum(self.head_N[env_K] - self.stream_start_N[env_K], c)
            cleared.append(self._push_lead(env_K, obs_S[shifted_S, -1], depth_K).cleared)
        new_S = ~shifted_S
        if not new_S.any():
            return cleared
        env_K, obs_K = env_S[new_S], obs_S[new_S]
        # first_K: the last of the leading frames equal to frame 0; the stack is rebuilt from there
        first_K = np.zeros(len(env_K), dtype=np.int64)
        if c > 1:
            frame_size = int(np.prod(self.obs_shape[1:]))
            same_KC = (obs_K[:, 1:] == obs_K[:, :-1]).reshape(len(env_K), c - 1, frame_size).all(axis=2)
            first_K = np.where(same_KC.all(axis=1), c - 1, np.argmin(same_KC, axis=1))
        self.stream_start_N[env_K] = self.head_N[env_K]
        for i in range(c):  # at most C rounds, each over all starting envs
            sel_K = c - first_K > i
            if not sel_K.any():
                break
            rows = np.flatnonzero(sel_K)
            cleared.append(
                self._push_lead(env_K[sel_K], obs_K[rows, first_K[sel_K] + i], np.full(len(rows), i)).cleared
            )
        return cleared

    def add(
        self,
        obs_N: np.ndarray,
        actions_N: np.ndarray,
        rewards_N: np.ndarray,
        next_obs_N: np.ndarray,
        terminated_N: np.ndarray,
        truncated_N: np.ndarray,
        valid_N: np.ndarray | None = None,
        *,
        next_mask_N: np.ndarray | None = None,
    ) -> SlotChanges:
        """Store one step of the ``N`` envs, skipping those where ``valid_N`` is False.

        ``next_mask_N`` ``(N, A)`` bool: the legal actions of each ``s'``, required with ``mask_actions``.

        Row ``n`` must always come from env ``n``. ``valid_N`` is False for the step that only
        resets an env after its episode ended (next-step autoreset): it joins two episodes
        and is never stored. Where episodes start is read off the frames (see the module
        docstring); ``terminated_N`` and ``truncated_N`` mark where they end (n-step windows stop).

        Returns the flat slots (``env * L + slot``) changed, for
        :class:`~dueldqn.replay.PrioritizedReplay`: ``written`` now hold this step's transitions;
        ``cleared`` hold none any more (lead slots, slots that left the sampleable window), and
        are to be applied first, since a slot that left the window early in the call can receive
        the transition at its end.

        Raises:
            ValueError: for rows that are not ``N`` stacked observations of ``obs_shape``, a
                pair whose ``s'`` is not ``s`` shifted by one frame (typically an autoreset
                step passed as valid), or an action outside ``[0, 32767]``.
        """
        expected = (self.num_envs, *self.obs_shape)
        if self.mask_actions and (next_mask_N is None or next_mask_N.shape != (self.num_envs, self.mask_actions)):
            got = None if next_mask_N is None else next_mask_N.shape
            raise ValueError(
                f"expected next-state action masks of shape {(self.num_envs, self.mask_actions)}, got {got}"
            )
        if obs_N.shape != expected or next_obs_N.shape != expected:
            raise ValueError(
                f"FrameReplayBuffer.add expects obs_N and next_obs_N of shape {expected}, "
                f"got {obs_N.shape} and {next_obs_N.shape}"
            )
        if valid_N is None or valid_N.all():
            env_V = np.arange(self.num_envs)
            obs_V, next_obs_V = obs_N, next_obs_N
        else:
            env_V = np.flatnonzero(valid_N)
            if len(env_V) == 0:
                return SlotChanges(NO_SLOTS, NO_SLOTS)
            obs_V, next_obs_V = obs_N[env_V], next_obs_N[env_V]
        actions_V = np.asarray(actions_N)[env_V]
        if not np.issubdtype(actions_V.dtype, np.integer) or (
            (actions_V < 0).any() or (actions_V > np.iinfo(_ACTION_DTYPE).max).any()
        ):
            raise ValueError(f"FrameReplayBuffer stores integer actions in [0, 32767], got {actions_V}")
        broken_V = ~_rows_equal(next_obs_V[:, :-1], obs_V[:, 1:])
        if broken_V.any():
            raise ValueError(
                f"env {int(env_V[np.argmax(broken_V)])}: next_obs is not obs shifted by one frame "
                "(next_obs[:-1] != obs[1:]); FrameReplayBuffer needs frames stacked on the first axis, "
                "and the autoreset step after an episode's end must be passed with valid_N False"
            )
        fresh_V = (self.head_N[env_V] == 0) | ~_rows_equal(obs_V, self.last_next_obs_N[env_V])
        cleared = self._start_streams(env_V[fresh_V], obs_V[fresh_V]) if fresh_V.any() else []
        terminated_V = np.asarray(terminated_N)[env_V].astype(bool)
        truncated_V = np.asarray(truncated_N)[env_V].astype(bool) & ~terminated_V
        changes = self._push(
            env_V,
            next_obs_V[:, -1],
            np.minimum(self.head_N[env_V] - self.stream_start_N[env_V], self.stack),
            (_TRANSITION | np.where(terminated_V, _TERMINATED, 0) | np.where(truncated_V, _TRUNCATED, 0)).astype(
                np.uint8
            ),
            actions_V.astype(_ACTION_DTYPE),
            np.asarray(rewards_N, dtype=np.float32)[env_V],
            None if next_mask_N is None or not self.mask_actions else np.packbits(next_mask_N[env_V], axis=1),
        )
        self.last_next_obs_N[env_V] = next_obs_V
        return SlotChanges(changes.written, np.concatenate([*cleared, changes.cleared]))

    # --- reading ---------------------------------------------------------------------------

    def valid_indices(self) -> np.ndarray:
        """Flat indices ``env * L + slot`` of every sampleable transition, env by env, oldest first."""
        start_N = self._window_start_N()
        per_env = []
        for n in range(self.num_envs):
            slot_W = np.arange(start_N[n], self.head_N[n]) % self.slots
            slot_W = slot_W[(self.flags_NL[n, slot_W] & _TRANSITION) != 0]
            per_env.append(n * self.slots + slot_W)
        return np.concatenate(per_env).astype(np.int64)

    def _stack_slots(self, env_B: np.ndarray, slot_B: np.ndarray, offset_O: np.ndarray) -> np.ndarray:
        """``(B, O)`` slots ``slot - min(offset, depth)``: the frames of a stack ending ``offset`` before a slot."""
        depth_B1 = self.depth_NL[env_B, slot_B].astype(np.int64)[:, None]
        return (slot_B[:, None] - np.minimum(offset_O[None, :], depth_B1)) % self.slots

    def gather(self, idx_B: np.ndarray) -> Batch:
        """Rebuild the transitions at flat indices ``idx_B`` (from :meth:`valid_indices`).

        ``s`` is the stack of slots ``p - min(o, depth_p)`` for ``o = C, ..., 1``; ``s'`` that of
        the window's last slot ``q`` (``q = p`` for one step) for ``o = C - 1, ..., 0``. With
        ``n_step > 1`` the rewards are the folded returns and ``discounts`` ``gamma^k``
        (:func:`~dueldqn.replay.nstep.fold_consecutive`). ``indices`` are the flat slots and
        ``weights`` stay ``None`` (uniform replay needs no correction).
        """
        env_B, slot_B = np.divmod(np.asarray(idx_B, dtype=np.int64), self.slots)
        flags_B = self.flags_NL[env_B, slot_B]
        rewards_B, last_B, discounts_B = self.rewards_NL[env_B, slot_B], slot_B, None
        if self.n_step > 1:
            slot_BK = (slot_B[:, None] + np.arange(self.n_step)) % self.slots  # the slot and the n - 1 after it
            flags_BK = self.flags_NL[env_B[:, None], slot_BK]
            newer_B = (self.head_N[env_B] - 1 - slot_B) % self.slots  # slots written after p in its env
            linked_BK = (
                (np.arange(self.n_step) < newer_B[:, None])
                & ((np.roll(flags_BK, -1, axis=1) & _TRANSITION) != 0)
                & ((flags_BK & (_TERMINATED | _TRUNCATED)) == 0)
            )
            fold = fold_consecutive(
                self.rewards_NL[env_B[:, None], slot_BK],
                (flags_BK & _TERMINATED) != 0,
                linked_BK,
                n=self.n_step,
                gamma=self.gamma,
            )
            rewards_B, discounts_B = fold.returns_B, fold.discounts_B
            last_B = slot_BK[np.arange(len(slot_B)), fold.last_B]
            flags_B = self.flags_NL[env_B, last_B]
        env_B1 = env_B[:, None]
        return Batch(
            obs=self.frames[env_B1, self._stack_slots(env_B, slot_B, np.arange(self.stack, 0, -1))],
            actions=self.actions_NL[env_B, slot_B].astype(np.int64),
            rewards=rewards_B,
            next_obs=self.frames[env_B1, self._stack_slots(env_B, last_B, np.arange(self.stack - 1, -1, -1))],
            terminated=((flags_B & _TERMINATED) != 0).astype(np.float32),
            indices=env_B * self.slots + slot_B,
            discounts=discounts_B,
            next_mask=self._masks(env_B, last_B),
        )

    def _masks(self, env_B: np.ndarray, slot_B: np.ndarray) -> np.ndarray | None:
        """The action masks ``(B, A)`` bool kept at the slots (``None`` without masks)."""
        if not self.mask_actions:
            return None
        return np.unpackbits(self.mask_NLM[env_B, slot_B], axis=1, count=self.mask_actions).astype(bool)

    def sample(self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` stored transitions uniformly, with replacement (``beta`` is unused).

        A slot is drawn uniformly from all envs' sampleable windows; slots that hold no
        transition (episode starts, a small fraction) are drawn again, so every stored
        transition has the same probability.
        """
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        start_N = self._window_start_N()
        width_N = self.head_N - start_N
        end_N = np.cumsum(width_N)
        idx_B = np.empty(batch_size, dtype=np.int64)
        filled = 0
        while filled < batch_size:  # rounds of vectorised draws; nearly all land on a transition
            u_K = rng.integers(0, end_N[-1], size=batch_size - filled)
            env_K = np.searchsorted(end_N, u_K, side="right")
            slot_K = (start_N[env_K] + u_K - (end_N[env_K] - width_N[env_K])) % self.slots
            hit_K = (self.flags_NL[env_K, slot_K] & _TRANSITION) != 0
            hits = int(hit_K.sum())
            idx_B[filled : filled + hits] = env_K[hit_K] * self.slots + slot_K[hit_K]
            filled += hits
        return self.gather(idx_B)

    # --- checkpoints -----------------------------------------------------------------------

    def update_priorities(self, indices_B: np.ndarray | None, td_abs_B: Any) -> None:
        """Nothing to do: this storage samples uniformly (the :class:`~dueldqn.replay.protocol.Replay` protocol)."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """The stored frames, transitions and counters, as plain arrays (for ``np.save``)."""
        m = int(min(self.slots, self.head_N.max()))  # slots written in any env so far
        return (
            {key: getattr(self, name)[:, :m] for key, name in self._slot_arrays.items()}
            | {key: getattr(self, name) for key, name in _ENV_ARRAYS.items()}
            | {"capacity_num_envs": np.array([self.capacity, self.num_envs], dtype=np.int64)}
        )

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; capacity, env count and shapes must match."""
        capacity, num_envs = (int(x) for x in state["capacity_num_envs"])
        obs_shape = tuple(state["last_next_obs"].shape[1:])
        if (capacity, num_envs, obs_shape) != (self.capacity, self.num_envs, self.obs_shape):
            raise ValueError(
                f"replay state is for capacity {capacity}, {num_envs} envs and observations {obs_shape}; "
                f"this buffer has capacity {self.capacity}, {self.num_envs} envs and observations {self.obs_shape}"
            )
        if self.mask_actions and "next_mask" not in state:
            raise ValueError(f"replay state holds no action masks of {self.mask_actions} actions, which this run uses")
        m = state["frames"].shape[1]
        for key, name in self._slot_arrays.items():
            getattr(self, name)[:, :m] = state[key]
        for key, name in _ENV_ARRAYS.items():
            getattr(self, name)[:] = state[key]
