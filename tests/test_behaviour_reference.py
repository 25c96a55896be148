"""Refactors keep behaviour: short runs against digests recorded by the code before the refactor.

The digests (``tests/data/behaviour_reference.json``) hash each run's ``metrics.csv`` (without its
wall-clock ``steps_per_second`` column) and its final weights. Float rounding differs between
CPUs and libraries, so the file holds one recording per :func:`float_key`: what decides the float
results (the CPU model, torch's version and the CPU capability its kernels dispatch to, numpy's
version and the BLAS kernel it runs). Where a recording has this machine's key the test binds (it
fails on any difference); where none has, it is skipped and says so. Add this machine's recording
with ``python tests/test_behaviour_reference.py --record`` (it keeps the others); re-record only
when a change of behaviour is intended.
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import threadpoolctl
import torch
from safetensors.torch import load_file

from dueldqn.atari_protocol import is_atari
from dueldqn.files import atomic_write_text
from dueldqn.training import train

REFERENCE = Path(__file__).parent / "data" / "behaviour_reference.json"
QUIET: dict[str, Any] = {"progress": False, "tensorboard": False}
SHORT = {
    "env_id": "CartPole-v1",
    "total_steps": 3_000,
    "learning_starts": 500,
    "log_interval": 250,
    "eval_episodes": 2,
    "checkpoint_every": 1_000,
}
RUNS: dict[str, dict[str, Any]] = {
    "cartpole-numpy-dqn": {**SHORT, "preset": "cartpole"},
    "cartpole-torch-double-polyak": {
        **SHORT,
        "algo": "double",
        "numpy_mlp": False,
        "target_sync": "polyak",
        "tau": 0.05,
        "loss": "huber",
        "num_envs": 2,
    },
    "cartpole-sarsa-episodes": {**SHORT, "algo": "sarsa", "target_sync": "episodes", "target_sync_every": 3},
    "breakout-conv": {
        "env_id": "ALE/Breakout-v5",
        "total_steps": 400,
        "learning_starts": 200,
        "buffer_size": 1_000,
        "batch_size": 8,
        "log_interval": 100,
        "eval_episodes": 1,
        "checkpoint_every": 200,
        "torch_threads": 2,  # recorded with all (2) cores, the default before the timed thread policy
    },
}


def float_key() -> str:
    """What float results depend on: CPU model and arch, torch and its CPU capability, numpy and its BLAS kernel."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    site = str(Path(np.__file__).resolve().parent.parent / "numpy")  # numpy/ and its wheel's numpy.libs/
    loaded = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    ours = [lib for lib in loaded if str(Path(lib["filepath"]).resolve()).startswith(site)] or loaded
    blas = [f"{lib['internal_api']} {lib['version']} {lib.get('architecture')}" for lib in ours]
    return (
        f"{model} | {platform.machine()} | torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()} | "
        f"numpy {np.__version__} {', '.join(blas) or 'no BLAS seen'}"
    )


def digest(run_dir: Path) -> dict[str, str]:
    """sha256 of metrics.csv without its timing column, and of the final weights in name order."""
    rows = hashlib.sha256()
    with (run_dir / "metrics.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            row.pop("steps_per_second")
            row.pop("threads", None)  # added after the recording; the runs below fix the count
            rows.update(json.dumps(row, sort_keys=True).encode())
    weights = hashlib.sha256()
    tensors = load_file(run_dir / "model.safetensors")
    for name in sorted(tensors):
        weights.update(name.encode() + tensors[name].numpy().tobytes())
    return {"metrics": rows.hexdigest(), "weights": weights.hexdigest()}


def run(name: str, tmp_path: Path) -> dict[str, str]:
    settings = dict(RUNS[name])
    if is_atari(settings["env_id"]):
        pytest.importorskip("ale_py")
        pytest.importorskip("cv2")
    train(run_dir=tmp_path / name, **settings, **QUIET)
    return digest(tmp_path / name)


def recording() -> dict[str, dict[str, str]]:
    """This machine's recorded digests; a skip naming the keys there are when none has :func:`float_key`."""
    recordings = json.loads(REFERENCE.read_text())["recordings"]
    key = float_key()
    if key not in recordings:
        pytest.skip(f"no recording for {key!r} (recorded: {sorted(recordings)}); add one with --record")
    return recordings[key]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("breakout") else n for n in sorted(RUNS)]
)
def test_run_matches_the_recorded_reference(name: str, tmp_path: Path) -> None:
    expected = recording()[name]
    assert run(name, tmp_path) == expected


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        recorded = {name: run(name, Path(tmp)) for name in sorted(RUNS)}
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"recordings": {}}
    reference["recordings"][float_key()] = recorded
    atomic_write_text(REFERENCE, json.dumps(reference, indent=2, sort_keys=True) + "\n")
    print(REFERENCE.read_text())


def test_a_checkpoint_of_format_1_resumes_to_the_uninterrupted_run(tmp_path: Path) -> None:
    """A run paused at step 300 by the code of commit 92bf31f (checkpoint format 1) goes on to 600."""
    fixture = json.loads((REFERENCE.parent / "format1_run.json").read_text())
    run_dir = tmp_path / "run"
    shutil.copytree(REFERENCE.parent / "format1_run", run_dir)
    result = train(resume=run_dir, **QUIET)
    assert result.finished and result.summary["total_steps"] == 600
    if float_key() in fixture["finished_digests"]:  # where the uninterrupted run was recorded: bit for bit
        assert digest(run_dir) == fixture["finished_digests"][float_key()]
