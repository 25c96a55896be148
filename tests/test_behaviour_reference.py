"""Refactors keep behaviour: short runs against digests recorded by the code before the refactor.

The digests (``tests/data/behaviour_reference.json``) hash each run's ``metrics.csv`` (without its
wall-clock ``steps_per_second`` column) and its final weights. Float rounding differs between
CPUs, so the digests only bind on the machine that recorded them (same CPU model, torch and
numpy): elsewhere the test is skipped and says so. Re-record only when a change of behaviour is
intended: ``python tests/test_behaviour_reference.py --record``.
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
import torch
from safetensors.torch import load_file

from dueldqn.training import train

REFERENCE = Path(__file__).parent / "data" / "behaviour_reference.json"
QUIET = {"progress": False, "tensorboard": False}
SHORT = {"env_id": "CartPole-v1", "total_steps": 3_000, "learning_starts": 500, "log_interval": 250,
         "eval_episodes": 2, "checkpoint_every": 1_000}  # fmt: skip
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


def machine() -> str:
    """The CPU model, torch and numpy versions: what float results may depend on."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)  # fmt: skip
    return f"{model} | torch {torch.__version__} | numpy {np.__version__} | {platform.machine()}"


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
    if settings["env_id"].startswith("ALE/"):
        pytest.importorskip("ale_py")
        pytest.importorskip("cv2")
    train(run_dir=tmp_path / name, **settings, **QUIET)
    return digest(tmp_path / name)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_matches_the_recorded_reference(name: str, tmp_path: Path) -> None:
    reference = json.loads(REFERENCE.read_text())
    if reference["machine"] != machine():
        pytest.skip(f"reference recorded on {reference['machine']!r}; this is {machine()!r}")
    assert run(name, tmp_path) == reference["runs"][name]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        recorded = {name: run(name, Path(tmp)) for name in sorted(RUNS)}
    REFERENCE.write_text(json.dumps({"machine": machine(), "runs": recorded}, indent=2) + "\n")
    print(REFERENCE.read_text())


def test_a_checkpoint_of_format_1_resumes_to_the_uninterrupted_run(tmp_path: Path) -> None:
    """A run paused at step 300 by the code of commit 92bf31f (checkpoint format 1) goes on to 600."""
    fixture = json.loads((REFERENCE.parent / "format1_run.json").read_text())
    run_dir = tmp_path / "run"
    shutil.copytree(REFERENCE.parent / "format1_run", run_dir)
    result = train(resume=run_dir, **QUIET)
    assert result.finished and result.summary["total_steps"] == 600
    if fixture["machine"] == machine():
        assert digest(run_dir) == fixture["finished_digest"]
