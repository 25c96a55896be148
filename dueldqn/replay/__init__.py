"""Replay memory: what the learner samples its batches from.

- :mod:`dueldqn.replay.uniform`: :class:`ReplayBuffer`, a preallocated numpy ring of transitions,
  sampled uniformly (vector observations, any image that is not a stack of frames);
- :mod:`dueldqn.replay.frames`: :class:`FrameReplayBuffer`, the same for Atari's stacked frames,
  each frame stored once.

- :mod:`dueldqn.replay.sum_tree`: :class:`SumTree`, sum and min over priorities, for sampling in
  proportion to them;
- :mod:`dueldqn.replay.prioritized`: :class:`PrioritizedReplay`, proportional prioritized replay
  (Schaul et al., 2016) over either storage.

Both storages take one vector-env step at a time through ``add`` and return a :class:`Batch` from
``sample``. For prioritized replay they also expose their slots: ``num_slots`` (the flat slot
space, a ring slot or ``env * L + slot``), ``add`` returns the :class:`SlotChanges` it made,
``valid_indices()`` lists the slots holding a sampleable transition and ``gather(slots_B)``
rebuilds the :class:`Batch` at given slots (``sample`` is ``gather`` of uniform draws).
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


class SlotChanges(NamedTuple):
    """The slots one ``add`` changed, as flat slot indices; apply ``cleared`` before ``written``.

    ``cleared`` slots no longer hold a sampleable transition (the frame replay's lead slots, and
    the slot that left its sampleable window); ``written`` slots now hold a new transition. A slot
    can be in both (cleared by one write of the call, given a transition by a later one).
    """

    written: np.ndarray  # (K,) int64
    cleared: np.ndarray  # (M,) int64


NO_SLOTS = np.zeros(0, dtype=np.int64)


# After Batch: the storages import it from here.
from dueldqn.replay.frames import FrameReplayBuffer  # noqa: E402
from dueldqn.replay.prioritized import PrioritizedReplay  # noqa: E402
from dueldqn.replay.sum_tree import SumTree  # noqa: E402
from dueldqn.replay.uniform import ReplayBuffer  # noqa: E402

__all__ = ["Batch", "FrameReplayBuffer", "PrioritizedReplay", "ReplayBuffer", "SlotChanges", "SumTree"]
