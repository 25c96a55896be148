"""Which torch device a run uses: the one place that reads ``--device``."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda when available, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)
