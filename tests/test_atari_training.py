"""A few hundred steps of Breakout training with DuelDQN, end to end on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dueldqn import DuelDQN
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import resolve_config
from dueldqn.training import train

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

pytestmark = pytest.mark.slow  # Atari training


def test_breakout_trains_end_to_end(tmp_path: Path) -> None:
    config = resolve_config(
        "ALE/Breakout-v5",
        None,
        {
            "total_steps": 300,
            "learning_starts": 100,
            "buffer_size": 1_000,
            "batch_size": 8,
            "log_interval": 100,
            "eval_episodes": 1,
            "checkpoint_every": 150,
        },
    )
    assert (config.train_frequency, config.eval_epsilon, config.learning_rate) == (4, 0.05, 1e-4)  # the preset
    result = train(config, run_dir=tmp_path / "run", progress=False, tensorboard=False)

    assert isinstance(result.agent.q_net, DuelDQN)  # four actions and stacked frames: the spec network
    # an update every 4th vector step from step 100 on: steps 100, 104, ..., 300
    assert result.summary["updates"] == len(range(100, 301, 4))
    # the summary reports the one evaluation game, a whole Breakout score (bricks pay 1, 4 or 7), unclipped
    assert result.eval is not None
    score = result.eval.returns[0]
    assert result.summary["eval_episodes"] == 1 and result.summary["eval_mean_return"] == score
    assert float(score).is_integer() and json.loads((tmp_path / "run" / "eval.json").read_text())["returns"] == [score]
    # The eval env plays a whole game (5 lives), far longer than one life of the training env.
    assert result.eval.lengths[0] > 100

    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run")[0])
    assert ckpt.states["envs"]["snapshot"]["ale"][0]["game"] == "breakout"  # the emulator is saved: exact resume
    replay = ckpt.states["replay"]
    assert replay["frames"].shape[-2:] == (84, 84)
    assert replay["frames"].dtype == np.uint8
    assert ckpt.states["loop"]["obs_NO"].shape == (1, 4, 84, 84)
