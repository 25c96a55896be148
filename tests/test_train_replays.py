"""Prioritized replay and n-step returns in real training runs: wiring, priorities, exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.training import train

RUN: dict[str, Any] = {
    "env_id": "CartPole-v1",
    "total_steps": 600,
    "learning_starts": 100,
    "batch_size": 16,
    "hidden_sizes": (16,),
    "train_frequency": 1,
    "gradient_steps": 1,
    "eval_episodes": 1,
    "checkpoint_every": 300,
    "keep_checkpoints": 3,
    "log_interval": 100,
    "lr_final_fraction": 1.0,
    "progress": False,
    "tensorboard": False,
}


@pytest.fixture(scope="module")
def per_nstep_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("per") / "run"
    train(run_dir=run_dir, prioritized=True, n_step=3, alpha=0.6, beta0=0.4, **RUN)
    return run_dir


def test_priorities_follow_the_td_errors_and_links_are_saved(per_nstep_run: Path) -> None:
    ckpt = load_checkpoint(list_checkpoints(per_nstep_run)[0])
    assert ckpt.states["loop"]["updates"] == 501  # one per env step from step 100 to 600
    replay = ckpt.states["replay"]
    size = int(replay["storage/pos_size_capacity"][1])
    priorities = replay["priorities"][:size]
    max_priority = float(replay["max_priority_alpha_eps"][0])
    # Sampled transitions got (|delta| + eps)^0.6, the others still hold the largest priority seen.
    assert (priorities > 0).all() and len(np.unique(priorities)) > 100
    assert max_priority >= 1.0 and priorities.max() <= max_priority  # new transitions take the largest seen
    next_slot = replay["storage/next_slot"]
    assert next_slot.shape == (size,) and ((next_slot == -1) | (next_slot < size)).all()
    # CartPole pays 1 a step: every link joins consecutive steps of one episode (obs of the next = s' of this).
    linked = np.flatnonzero(next_slot >= 0)
    np.testing.assert_array_equal(replay["storage/obs"][next_slot[linked]], replay["storage/next_obs"][linked])


def test_resume_with_prioritized_n_step_replay_equals_the_uninterrupted_run(
    per_nstep_run: Path, tmp_path: Path
) -> None:
    resumed = tmp_path / "run"
    shutil.copytree(per_nstep_run, resumed)
    shutil.rmtree(list_checkpoints(resumed)[0])  # back to the checkpoint at step 300
    assert load_checkpoint(list_checkpoints(resumed)[0]).step == 300
    train(resume=resumed, progress=False, tensorboard=False)
    a, b = load_file(resumed / "model.safetensors"), load_file(per_nstep_run / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in b)
    end_a, end_b = (load_checkpoint(list_checkpoints(d)[0]) for d in (resumed, per_nstep_run))
    for name, value in end_b.states["replay"].items():
        np.testing.assert_array_equal(end_a.states["replay"][name], value, err_msg=name)


# n-step returns over Atari's frame replay (no longer refused): tests/test_atari100k.py trains with them.


@pytest.mark.slow
def test_prioritized_replay_over_atari_frames_trains_and_checkpoints(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    result = train(
        env_id="ALE/Breakout-v5",
        prioritized=True,
        total_steps=300,
        learning_starts=100,
        buffer_size=1_000,
        batch_size=8,
        log_interval=100,
        eval_episodes=1,
        checkpoint_every=0,
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
    )
    assert result.summary["updates"] == len(range(100, 301, 4))  # the atari preset learns every 4th step
    replay = load_checkpoint(list_checkpoints(result.run_dir)[0]).states["replay"]
    priorities = replay["priorities"]
    # The frame replay's lead slot of each episode start holds no transition: priority 0; 300 steps hold 299-ish.
    assert 0 < (priorities > 0).sum() < 300 and (priorities[:300] == 0).sum() >= 1
    assert len(np.unique(priorities[priorities > 0])) > 10  # sampled ones took (|delta| + eps)^alpha


def test_stop_at_pauses_and_resuming_equals_the_uninterrupted_run(per_nstep_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    paused = train(run_dir=run_dir, prioritized=True, n_step=3, alpha=0.6, beta0=0.4, stop_at=450, **RUN)
    assert not paused.finished and paused.eval is None and not (run_dir / "model.safetensors").exists()
    assert load_checkpoint(list_checkpoints(run_dir)[0]).step == 450  # a checkpoint where it paused
    again = train(resume=run_dir, stop_at=450, progress=False, tensorboard=False)  # nothing left before 450
    assert not again.finished
    done = train(resume=run_dir, progress=False, tensorboard=False)
    assert done.finished and done.eval is not None and done.summary["total_steps"] == 600
    a, b = load_file(run_dir / "model.safetensors"), load_file(per_nstep_run / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in b)  # schedules ran over total_steps, not stop_at
