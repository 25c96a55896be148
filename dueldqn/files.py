"""A run directory's files by name, and the atomic write every file of the package goes through.

Every file is written to a temporary name in the same directory, flushed to disk and renamed over
the target, so a crash while writing leaves the previous file whole. Nothing here imports more
than the standard library: the command line (``dueldqn plot``) reads runs without loading torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# What `dueldqn train` leaves in a run directory (beside metrics.csv, tb/ and checkpoints/):
CONFIG_FILE = "config.json"  # the run's Config (Config.to_dict), written first
MODEL_FILE = "model.safetensors"  # the trained network and the spec that rebuilds it (dueldqn.checkpoint.save_model)
SUMMARY_FILE = "summary.json"  # the run's end: steps, times, the final evaluation (dueldqn.training.SUMMARY_FIELDS)
EVAL_FILE = "eval.json"  # the final (or `dueldqn eval`'s) evaluation: epsilon, seed, each game's return and length
CURVE_FILE = "learning_curve.png"  # the run's plotted statistics (dueldqn.plotting.plot_run)
APEX_FILE = "apex.json"  # an Ape-X run's runner restarts and each runner's epsilon (dueldqn.executors.apex)


def file_mode(directory: bool = False) -> int:
    """The mode ``open`` / ``mkdir`` would give a new file or directory (mkstemp's are private)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, fsync it, then rename it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
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
