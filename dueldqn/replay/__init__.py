"""Replay memory: what the learner samples its batches from.

- :mod:`dueldqn.replay.uniform`: :class:`ReplayBuffer`, a preallocated numpy ring of transitions,
  sampled uniformly (vector observations, any image that is not a stack of frames);
- :mod:`dueldqn.replay.frames`: :class:`FrameReplayBuffer`, the same for Atari's stacked frames,
  each frame stored once.

- :mod:`dueldqn.replay.sum_tree`: :class:`SumTree`, sum and min over priorities, for sampling in
  proportion to them;
- :mod:`dueldqn.replay.prioritized`: :class:`PrioritizedReplay`, proportional prioritized replay
  (Schaul et al., 2016) over either storage.

All three satisfy :class:`~dueldqn.replay.protocol.Replay`, what the loops use: they take one vector-env
step at a time through ``add``, return a :class:`Batch` from ``sample`` and take ``update_priorities``
(a no-op for the storages). For prioritized replay they also expose their slots: ``num_slots`` (the flat slot
space, a ring slot or ``env * L + slot``), ``add`` returns the :class:`SlotChanges` it made,
``valid_indices()`` lists the slots holding a sampleable transition and ``gather(slots_B)``
rebuilds the :class:`Batch` at given slots (``sample`` is ``gather`` of uniform draws).
"""

from __future__ import annotations

from dueldqn.replay.batch import NO_SLOTS, Batch, SlotChanges
from dueldqn.replay.frames import FrameReplayBuffer
from dueldqn.replay.prioritized import PrioritizedReplay
from dueldqn.replay.protocol import Replay
from dueldqn.replay.sum_tree import SumTree
from dueldqn.replay.uniform import ReplayBuffer

__all__ = [
    "NO_SLOTS",
    "Batch",
    "FrameReplayBuffer",
    "PrioritizedReplay",
    "Replay",
    "ReplayBuffer",
    "SlotChanges",
    "SumTree",
]
