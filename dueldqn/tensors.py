"""What crosses between the components and torch: numpy batches onto a device, and weights off it.

The actor, the learner and the trained agent all feed the network through :func:`as_network_input`;
the learner hands its weights to actors in other processes as :class:`Weights`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from dueldqn.networks import preprocess_frames


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy array as a tensor on ``device``: shared memory on the CPU; to a GPU through pinned
    (page-locked) memory with a non-blocking copy, so the transfer overlaps other work."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor if device.type == "cpu" else tensor.to(device)


def as_network_input(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy batch of observations as the network's float input on ``device``.

    uint8 frames travel as uint8 (4x less to copy) and are scaled by :func:`preprocess_frames`
    on the device; other observations become float32.
    """
    tensor = to_device(obs, device)
    return preprocess_frames(tensor) if tensor.dtype == torch.uint8 else tensor.float()


class Weights(NamedTuple):
    """A versioned CPU copy of the online network's weights: what crosses a process boundary (Ape-X on Ray)."""

    version: int  # the learner's update count when the copy was taken
    params: dict[str, np.ndarray]  # the online network's state_dict as numpy copies
