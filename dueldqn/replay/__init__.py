"""Replay memory: what the learner samples its batches from.

- :mod:`dueldqn.replay.uniform`: :class:`ReplayBuffer`, a preallocated numpy ring of transitions,
  sampled uniformly (vector observations, any image that is not a stack of frames);
- :mod:`dueldqn.replay.frames`: :class:`FrameReplayBuffer`, the same for Atari's stacked frames,
  each frame stored once.

Both take one vector-env step at a time through ``add`` and return a :class:`Batch` from ``sample``.
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
    indices: np.ndarray | None = None  # (B,) int64, prioritized replay: what update_priorities takes back
    weights: np.ndarray | None = None  # (B,) float32, prioritized replay's importance-sampling weights
    discounts: np.ndarray | None = None  # (B,) float32, n-step: gamma^k bootstrapping s' after k rewards


# After Batch: the storages import it from here.
from dueldqn.replay.frames import FrameReplayBuffer  # noqa: E402
from dueldqn.replay.uniform import ReplayBuffer  # noqa: E402

__all__ = ["Batch", "FrameReplayBuffer", "ReplayBuffer"]
