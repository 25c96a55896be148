"""Files a run writes and reads back: model weights in safetensors, and full-state checkpoints.

Nothing here unpickles: weights are safetensors, metadata JSON. Every file is written atomically
(:mod:`dueldqn.files`), so a crash while writing leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dueldqn.files import MODEL_FILE, atomic_write_json, file_mode


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save ``tensors`` as safetensors at ``path`` atomically (contiguous CPU copies)."""
    path = Path(path)
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(cpu, tmp, metadata=metadata)
        os.chmod(tmp, file_mode())
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


# Full-state checkpoints: run_dir/checkpoints/step_<steps>/ holding the *named components* of a
# run (the learner, the replay, the loop's counters, the envs, ...), each a ``state_dict()``:
#   tensors.safetensors  every torch tensor, as "<component>/<key>" (learner/online.head.value.weight)
#   arrays.npz           every numpy array but the replay's, as "<component>/<key>" (loop/obs_NO)
#   replay.npz           the replay component's arrays, under their own keys (unless save_replay is off)
#   state.json           everything else (counters, generator states, env states) by component, and
#                        the run's meta data (config, network spec)
# One file per kind of value, not per component (TorchRL's Checkpoint(**components), Acme's
# Checkpointer(objects_to_save={...})). A checkpoint is written into a hidden temporary directory
# and renamed into place when whole, so a crash mid-write leaves only the earlier checkpoints.
# Format 1 (before components had names) is read and converted by :func:`_components_of_format_1`.
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = 2
_TENSORS, _ARRAYS, _REPLAY, _STATE = "tensors.safetensors", "arrays.npz", "replay.npz", "state.json"
REPLAY = "replay"  # the component kept in its own file (large, and optional)

StateDict = dict[str, Any]  # a component's state: tensors, arrays and JSON values by name


@dataclass
class Checkpoint:
    """A loaded, checked checkpoint: its step, the run's meta data and each component's state."""

    path: Path
    step: int
    meta: dict[str, Any]  # "config", "network"
    states: dict[str, StateDict]  # by component name; no "replay" when it was not saved


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"{path} is not a readable numpy archive ({err}); it may be truncated, corrupt or a pickle "
            "(dueldqn never loads pickles)"
        ) from err


def _route(
    states: Mapping[str, StateDict],
) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, Any]]:
    """Split component states into tensors, arrays, the replay's arrays and JSON values."""
    tensors: dict[str, torch.Tensor] = {}
    arrays: dict[str, np.ndarray] = {}
    json_values: dict[str, dict[str, Any]] = {}
    replay: dict[str, np.ndarray] | None = None
    for name, state in states.items():
        if "/" in name:
            raise ValueError(f"a component name cannot hold '/': {name!r}")
        if name == REPLAY:
            replay = dict(state)
            continue
        json_values[name] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}/{key}"] = value
            elif isinstance(value, np.ndarray):
                arrays[f"{name}/{key}"] = value
            else:
                json_values[name][key] = value
    return tensors, arrays, replay, json_values


def save_checkpoint(
    run_dir: Path, step: int, states: Mapping[str, StateDict], *, meta: dict[str, Any], keep: int
) -> Path:
    """Write checkpoint ``step_<step>`` of the components' ``states`` whole or not at all; keep the newest ``keep``."""
    tensors, arrays, replay, json_values = _route(states)
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:012d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        tmp.chmod(file_mode(directory=True))
        save_tensors(tmp / _TENSORS, tensors)
        _save_npz(tmp / _ARRAYS, arrays)
        if replay is not None:
            _save_npz(tmp / _REPLAY, replay)
        atomic_write_json(tmp / _STATE, {"format": CHECKPOINT_FORMAT, "step": step, **meta, "components": json_values})
        if final.exists():  # the same step written again (a resumed run ending where it began)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step_*.tmp"):  # left by a crash mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, newest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    return sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True) if root.is_dir() else []


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and check one checkpoint directory; anything missing, truncated or foreign is a ``ValueError``."""
    path = Path(path)
    for name in (_TENSORS, _ARRAYS, _STATE):
        if not (path / name).is_file():
            raise ValueError(f"checkpoint {path} is incomplete: {name} is missing")
    try:
        state = json.loads((path / _STATE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path / _STATE} is not readable JSON ({err}); the checkpoint is corrupt") from err
    if not isinstance(state, dict) or state.get("format") not in (1, CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is not a dueldqn checkpoint (formats 1 and {CHECKPOINT_FORMAT} are read)")
    needed = ("step", "config", "network", *(("components",) if state["format"] == CHECKPOINT_FORMAT else ()))
    if missing := [key for key in needed if key not in state]:
        raise ValueError(f"{path / _STATE} lacks {', '.join(missing)}; the checkpoint is damaged or foreign")
    tensors, _ = load_tensors(path / _TENSORS)
    arrays = _load_npz(path / _ARRAYS)
    replay = _load_npz(path / _REPLAY) if (path / _REPLAY).is_file() else None
    meta = {"config": state["config"], "network": state["network"]}
    if state["format"] == 1:
        return Checkpoint(path, state["step"], meta, _components_of_format_1(tensors, arrays, replay, state))
    states: dict[str, StateDict] = {name: dict(values) for name, values in state["components"].items()}
    for key, value in [*tensors.items(), *arrays.items()]:
        component, _, name = key.partition("/")
        states.setdefault(component, {})[name] = value
    if replay is not None:
        states[REPLAY] = replay
    return Checkpoint(path, state["step"], meta, states)


def _components_of_format_1(
    tensors: dict[str, torch.Tensor],
    arrays: dict[str, np.ndarray],
    replay: dict[str, np.ndarray] | None,
    state: dict[str, Any],
) -> dict[str, StateDict]:
    """The component states held by a format-1 checkpoint (flat keys, written before components had names)."""
    learner: StateDict = {k: v for k, v in tensors.items() if k != "loss_sum"}
    learner["optimizer_param_groups"] = state["optimizer_param_groups"]
    loop: StateDict = {
        **state["loop"],
        "obs_NO": arrays["obs"],
        "autoreset_N": arrays["autoreset"],
        "loss_sum": tensors["loss_sum"],
    }
    states = {
        "learner": learner,
        "loop": loop,
        "rng": {"numpy_generator": state["numpy_generator"]},
        "envs": {"snapshot": state["envs"]},
        "logger": {"metrics_bytes": state["metrics_bytes"]},
    }
    if replay is not None:
        states[REPLAY] = replay
    return states
