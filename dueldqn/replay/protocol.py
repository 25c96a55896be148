"""What the loops need of a replay memory: :class:`Replay`, which all three replays satisfy (mypy checks it)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from dueldqn.replay.batch import Batch


class Replay(Protocol):
    """A replay memory the local loop and Ape-X's shards drive, whatever it stores and however it samples.

    ``update_priorities`` is a no-op where there are no priorities, so a loop never asks which replay it has.
    """

    def __len__(self) -> int: ...

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
    ) -> object:
        """Store one vector step of ``N`` envs (``valid_N`` False: an autoreset step, not stored; ``next_mask_N``:
        the legal actions of each ``s'`` where the run uses action masks); the storages return the
        :class:`~dueldqn.replay.batch.SlotChanges` they made."""
        ...

    def can_sample(self, min_size: int) -> bool:
        """Whether a batch of ``min_size`` can be drawn."""
        ...

    def sample(self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0) -> Batch:
        """A batch of ``batch_size`` transitions (``beta``: prioritized replay's importance-sampling exponent)."""
        ...

    def update_priorities(self, indices_B: np.ndarray | None, td_abs_B: Any) -> None:
        """Give the batch's transitions (``indices_B``, from :meth:`sample`) their new ``|delta|``: an array, or a
        tensor on any device (read only where there are priorities)."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything stored, for a checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Take what :meth:`state_dict` returned."""
        ...
