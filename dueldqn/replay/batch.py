"""What goes between replay and learner: :class:`Batch`, and the slots an ``add`` changed (:class:`SlotChanges`).

Its own module, below the storages, so that they and the learner import it without a cycle
through the package's ``__init__``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """A batch of ``B`` transitions ``(s, a, r, s', terminated)`` as numpy arrays."""

    obs: np.ndarray  # (B, *obs_shape), the observation dtype
    actions: np.ndarray  # (B,) int64
    rewards: np.ndarray  # (B,) float32
    next_obs: np.ndarray  # (B, *obs_shape), the real next observation, also after a truncation
    terminated: np.ndarray  # (B,) float32, 1.0 where s' is terminal (no bootstrap)
    indices: np.ndarray | None = None  # (B,) int64: storage slots, or PrioritizedReplay's tickets
    weights: np.ndarray | None = None  # (B,) float32 importance-sampling weights; None (all 1) from a storage
    discounts: np.ndarray | None = None  # (B,) float32, n-step: gamma^k bootstrapping s' after k rewards
    next_mask: np.ndarray | None = None  # (B, A) bool: the legal actions of next_obs (action masks); None: all


class SlotChanges(NamedTuple):
    """The slots one ``add`` changed, as flat slot indices; apply ``cleared`` before ``written``.

    ``cleared`` slots no longer hold a sampleable transition (the frame replay's lead slots, and
    the slot that left its sampleable window); ``written`` slots now hold a new transition. A slot
    can be in both (cleared by one write of the call, given a transition by a later one).
    """

    written: np.ndarray  # (K,) int64
    cleared: np.ndarray  # (M,) int64


NO_SLOTS = np.zeros(0, dtype=np.int64)
