"""Experience replay: a preallocated numpy ring buffer of transitions (Lin, 1992; Mnih et al., 2015).

The memory has a fixed capacity; once full, each new transition overwrites the oldest. A batch
is drawn uniformly at random with an explicit ``np.random.Generator``.

Every transition keeps ``terminated`` (the bootstrap mask: the MDP really ended) apart from a
time-limit truncation, which is stored with its real final observation and bootstrapped from,
like any other transition. Observations keep their dtype (``uint8`` frames stay ``uint8``)
until they are sampled.

With ``n_step > 1`` a sampled transition is folded with the next ones of its env's stream into an
n-step return (:mod:`dueldqn.replay.nstep`): the buffer then keeps, per slot, the slot of the same
env's next transition (``next_slot``), written when that transition arrives and cut at the end of
an episode. With ``n_step = 1`` none of that runs and a batch is exactly the stored transitions.

With action masks (``mask_actions > 0``) each transition also keeps the legal actions of its ``s'``
(``(A,)`` bool); an n-step batch takes those of the state it bootstraps from, ``s_{t+k}``. A run
without masks allocates nothing for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dueldqn.replay.batch import NO_SLOTS, Batch, SlotChanges
from dueldqn.replay.nstep import fold_n_step


class ReplayBuffer:
    """Uniform replay memory over a fixed-capacity ring of numpy arrays.

    Args:
        capacity: how many transitions are kept; the oldest is overwritten first.
        obs_shape: shape of one observation, e.g. ``(4,)`` for CartPole.
        obs_dtype: dtype observations are stored in (kept until sampling).
        num_envs: envs stepped together (each ``add`` takes one row per env); needed for n-step.
        n_step: transitions folded into each sampled return (1: the stored transition).
        gamma: the discount of the n-step return.
        mask_actions: store each ``s'``'s action mask of this many actions (0: no masks).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        *,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        mask_actions: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be a positive number of transitions, got {capacity}")
        if n_step < 1:
            raise ValueError(f"n_step must be a positive number of transitions, got {n_step}")
        self.num_envs, self.n_step, self.gamma = int(num_envs), int(n_step), float(gamma)
        self.next_slot = np.full(capacity, -1, dtype=np.int64)  # n-step: the same env's next transition
        self.open_N = np.full(num_envs, -1, dtype=np.int64)  # n-step: each env's last slot in a running episode
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.mask_actions = int(mask_actions)
        self.next_mask = np.zeros((capacity if mask_actions else 0, self.mask_actions), dtype=bool)  # legal in s'
        self.pos = 0  # where the next transition goes
        self.size = 0  # how many transitions are stored

    def __len__(self) -> int:
        return self.size

    def can_sample(self, min_size: int) -> bool:
        """Whether at least ``min_size`` transitions are stored (the warm-up rule)."""
        return self.size >= min_size

    @property
    def num_slots(self) -> int:
        """Slots in the flat slot space of :meth:`gather`: the ring's ``capacity``."""
        return self.capacity

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
        """Store one step of ``N`` vectorised envs, skipping the envs where ``valid_N`` is False.

        ``next_mask_N`` ``(N, A)`` bool: the legal actions of each ``s'``, required with ``mask_actions``.

        ``valid_N`` is False for the step that only resets an env after its episode ended
        (gymnasium's next-step autoreset): that "transition" joins two episodes and is never
        stored. ``truncated_N`` is not needed here (a truncated transition is bootstrapped like
        any non-terminal one); it is part of the signature so that every replay takes the same
        arguments (the frame replay needs it to know where episodes end).

        Returns the ring slots written (``written``; ``cleared`` is always empty here: a slot only
        ever goes from one transition to the next), for :class:`~dueldqn.replay.PrioritizedReplay`.
        """
        if self.n_step > 1:
            if len(actions_N) != self.num_envs:
                raise ValueError(f"expected one row per env ({self.num_envs}) for n-step returns, got {len(actions_N)}")
            ended_N = terminated_N.astype(bool) | truncated_N.astype(bool)
            valid_all = valid_N
        if self.mask_actions and (next_mask_N is None or next_mask_N.shape != (len(actions_N), self.mask_actions)):
            got = None if next_mask_N is None else next_mask_N.shape
            raise ValueError(
                f"expected next-state action masks of shape {(len(actions_N), self.mask_actions)}, got {got}"
            )
        if valid_N is not None and not valid_N.all():
            obs_N, actions_N, rewards_N = obs_N[valid_N], actions_N[valid_N], rewards_N[valid_N]
            next_obs_N, terminated_N = next_obs_N[valid_N], terminated_N[valid_N]
            if next_mask_N is not None:
                next_mask_N = next_mask_N[valid_N]
        n = len(actions_N)
        if n == 0:
            return SlotChanges(NO_SLOTS, NO_SLOTS)
        end = self.pos + n
        idx: slice | np.ndarray = (
            slice(self.pos, end) if end <= self.capacity else np.arange(self.pos, end) % self.capacity
        )
        self.obs[idx] = obs_N
        self.next_obs[idx] = next_obs_N
        self.actions[idx] = actions_N
        self.rewards[idx] = rewards_N
        self.terminated[idx] = terminated_N
        if self.mask_actions:
            self.next_mask[idx] = next_mask_N
        written = np.arange(self.pos, end, dtype=np.int64) % self.capacity
        if self.n_step > 1:
            self._link(valid_all, written, ended_N)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return SlotChanges(written, NO_SLOTS)

    def _link(self, valid_N: np.ndarray | None, written_K: np.ndarray, ended_N: np.ndarray) -> None:
        """Link each env's previous transition to the one just written, unless its episode ended.

        An overwritten slot loses its own link, and an env whose last slot was overwritten before
        its next transition came starts no link from it (the two would not be one stream).
        """
        if self.num_envs == 1:  # the same with scalars: a few microseconds a step less
            slot, previous = int(written_K[0]), int(self.open_N[0])
            self.next_slot[slot] = -1
            if previous >= 0 and previous != slot:
                self.next_slot[previous] = slot
            self.open_N[0] = -1 if ended_N[0] else slot
            return
        env_K = np.flatnonzero(valid_N) if valid_N is not None else np.arange(self.num_envs)
        ended_K = ended_N[env_K]
        self.next_slot[written_K] = -1
        previous_K = self.open_N[env_K]
        previous_K = np.where(np.isin(previous_K, written_K), -1, previous_K)
        linked_K = previous_K >= 0
        self.next_slot[previous_K[linked_K]] = written_K[linked_K]
        self.open_N[np.isin(self.open_N, written_K)] = -1
        self.open_N[env_K] = np.where(ended_K, -1, written_K)

    def valid_indices(self) -> np.ndarray:
        """``(size,)`` int64: the ring slots holding a transition (the first ``size``)."""
        return np.arange(self.size, dtype=np.int64)

    def gather(self, idx_B: np.ndarray) -> Batch:
        """The transitions at ring slots ``idx_B`` (from :meth:`valid_indices`).

        ``indices`` are the slots; ``weights`` stay ``None`` (uniform replay needs no correction, and
        the update then runs exactly the unweighted loss).
        """
        idx_B = np.asarray(idx_B, dtype=np.int64)
        if self.n_step == 1:
            return Batch(
                self.obs[idx_B],
                self.actions[idx_B],
                self.rewards[idx_B],
                self.next_obs[idx_B],
                self.terminated[idx_B],
                idx_B,
                next_mask=self.next_mask[idx_B] if self.mask_actions else None,
            )
        fold = fold_n_step(
            idx_B,
            rewards_S=self.rewards,
            terminated_S=self.terminated,
            next_S=self.next_slot,
            n=self.n_step,
            gamma=self.gamma,
        )
        return Batch(
            self.obs[idx_B],
            self.actions[idx_B],
            fold.returns_B,
            self.next_obs[fold.last_B],
            self.terminated[fold.last_B],
            idx_B,
            discounts=fold.discounts_B,
            next_mask=self.next_mask[fold.last_B] if self.mask_actions else None,  # S_{t+k}'s, the bootstrap's
        )

    def sample(self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` stored transitions uniformly, with replacement (``beta`` is unused)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.gather(rng.integers(0, self.size, size=batch_size))

    def update_priorities(self, indices_B: np.ndarray | None, td_abs_B: Any) -> None:
        """Nothing to do: this storage samples uniformly (the :class:`~dueldqn.replay.protocol.Replay` protocol)."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """The stored transitions and ring position, as plain arrays (for checkpoints)."""
        n = self.size
        return (
            {
                "obs": self.obs[:n],
                "next_obs": self.next_obs[:n],
                "actions": self.actions[:n],
                "rewards": self.rewards[:n],
                "terminated": self.terminated[:n],
                "pos_size_capacity": np.array([self.pos, self.size, self.capacity], dtype=np.int64),
            }
            | ({"next_slot": self.next_slot[:n], "open_envs": self.open_N} if self.n_step > 1 else {})
            | ({"next_mask": self.next_mask[:n]} if self.mask_actions else {})
        )

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; the capacity and shapes must match."""
        pos, size, capacity = (int(x) for x in state["pos_size_capacity"])
        if capacity != self.capacity or tuple(state["obs"].shape[1:]) != self.obs_shape:
            raise ValueError(
                f"replay state is for capacity {capacity} and observations {tuple(state['obs'].shape[1:])}, "
                f"this buffer has capacity {self.capacity} and observations {self.obs_shape}"
            )
        if self.mask_actions and ("next_mask" not in state or state["next_mask"].shape[1:] != (self.mask_actions,)):
            raise ValueError(f"replay state holds no action masks of {self.mask_actions} actions, which this run uses")
        for name in (
            "obs",
            "next_obs",
            "actions",
            "rewards",
            "terminated",
            *(("next_mask",) if self.mask_actions else ()),
        ):
            getattr(self, name)[:size] = state[name]
        self.pos, self.size = pos, size
        if self.n_step > 1:  # a one-step state has no links: its windows start at the next transitions
            self.next_slot[:] = -1
            if "next_slot" in state and len(state["open_envs"]) == self.num_envs:
                self.next_slot[:size] = state["next_slot"]
                self.open_N[:] = state["open_envs"]
            else:
                self.open_N[:] = -1
