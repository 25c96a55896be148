"""Experience replay: a preallocated numpy ring buffer of transitions (Lin, 1992; Mnih et al., 2015).

The memory has a fixed capacity; once full, each new transition overwrites the oldest. A batch
is drawn uniformly at random with an explicit ``np.random.Generator``.

Every transition keeps ``terminated`` (the bootstrap mask: the MDP really ended) apart from a
time-limit truncation, which is stored with its real final observation and bootstrapped from,
like any other transition. Observations keep their dtype (``uint8`` frames stay ``uint8``)
until they are sampled.
"""

from __future__ import annotations

import numpy as np

from dueldqn.replay import NO_SLOTS, Batch, SlotChanges


class ReplayBuffer:
    """Uniform replay memory over a fixed-capacity ring of numpy arrays.

    Args:
        capacity: how many transitions are kept; the oldest is overwritten first.
        obs_shape: shape of one observation, e.g. ``(4,)`` for CartPole.
        obs_dtype: dtype observations are stored in (kept until sampling).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be a positive number of transitions, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
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
    ) -> SlotChanges:
        """Store one step of ``N`` vectorised envs, skipping the envs where ``valid_N`` is False.

        ``valid_N`` is False for the step that only resets an env after its episode ended
        (gymnasium's next-step autoreset): that "transition" joins two episodes and is never
        stored. ``truncated_N`` is not needed here (a truncated transition is bootstrapped like
        any non-terminal one); it is part of the signature so that every replay takes the same
        arguments (the frame replay needs it to know where episodes end).

        Returns the ring slots written (``written``; ``cleared`` is always empty here: a slot only
        ever goes from one transition to the next), for :class:`~dueldqn.replay.PrioritizedReplay`.
        """
        if valid_N is not None and not valid_N.all():
            obs_N, actions_N, rewards_N = obs_N[valid_N], actions_N[valid_N], rewards_N[valid_N]
            next_obs_N, terminated_N = next_obs_N[valid_N], terminated_N[valid_N]
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
        written = np.arange(self.pos, end, dtype=np.int64) % self.capacity
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return SlotChanges(written, NO_SLOTS)

    def valid_indices(self) -> np.ndarray:
        """``(size,)`` int64: the ring slots holding a transition (the first ``size``)."""
        return np.arange(self.size, dtype=np.int64)

    def gather(self, idx_B: np.ndarray) -> Batch:
        """The transitions at ring slots ``idx_B`` (from :meth:`valid_indices`).

        ``indices`` are the slots; ``weights`` stay ``None`` (uniform replay needs no correction, and
        the update then runs exactly the unweighted loss).
        """
        idx_B = np.asarray(idx_B, dtype=np.int64)
        return Batch(
            self.obs[idx_B],
            self.actions[idx_B],
            self.rewards[idx_B],
            self.next_obs[idx_B],
            self.terminated[idx_B],
            idx_B,
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Draw ``batch_size`` stored transitions uniformly, with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.gather(rng.integers(0, self.size, size=batch_size))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The stored transitions and ring position, as plain arrays (for checkpoints)."""
        n = self.size
        return {
            "obs": self.obs[:n],
            "next_obs": self.next_obs[:n],
            "actions": self.actions[:n],
            "rewards": self.rewards[:n],
            "terminated": self.terminated[:n],
            "pos_size_capacity": np.array([self.pos, self.size, self.capacity], dtype=np.int64),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; the capacity and shapes must match."""
        pos, size, capacity = (int(x) for x in state["pos_size_capacity"])
        if capacity != self.capacity or tuple(state["obs"].shape[1:]) != self.obs_shape:
            raise ValueError(
                f"replay state is for capacity {capacity} and observations {tuple(state['obs'].shape[1:])}, "
                f"this buffer has capacity {self.capacity} and observations {self.obs_shape}"
            )
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:size] = state[name]
        self.pos, self.size = pos, size
