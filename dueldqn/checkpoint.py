"""Files a run writes and reads back: atomic writes, and model weights in safetensors.

Nothing here unpickles: weights are safetensors, metadata JSON. Every file is written to a
temporary name in the same directory and renamed over the target, so a crash while writing
leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, fsync it, then rename it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save ``tensors`` as safetensors at ``path`` atomically (contiguous CPU copies)."""
    path = Path(path)
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(cpu, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file and its metadata; a missing, truncated or foreign file is a ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no weights file at {path}; expected a {MODEL_FILE} written by dueldqn")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{path} is not a readable safetensors file ({err}); it may be truncated, corrupt or of another "
            "format (dueldqn never loads pickles)"
        ) from err
    return tensors, metadata


def save_model(path: Path, q_net: torch.nn.Module, spec: dict[str, Any]) -> None:
    """Save the online network's weights with the spec needed to rebuild it (JSON in the metadata)."""
    save_tensors(path, dict(q_net.state_dict()), {"dueldqn": json.dumps(spec)})


def load_model_spec(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and network spec saved by :func:`save_model`."""
    tensors, metadata = load_tensors(path)
    if "dueldqn" not in metadata:
        raise ValueError(f"{path} holds no dueldqn network spec; expected a {MODEL_FILE} written by dueldqn")
    return tensors, json.loads(metadata["dueldqn"])
