"""Named seeds: no two of a run's random streams share a seed, and a resume never reuses an evaluation's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvCreator

from dueldqn import seeds
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.training import train


class SeedRecorder(gym.Env[np.ndarray, np.int64]):
    """A 20-step episode that records each seed it is reset with; defined here, so its envs cannot be restored."""

    resets: ClassVar[list[int]] = []

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            SeedRecorder.resets.append(seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return np.full(2, self.t / 20, np.float32), float(action), self.t >= 20, False, {}


# The class is a callable that creates the env, as register wants; gymnasium's EnvCreator (**kwargs only) is narrower.
gym.register("dueldqn-test/SeedRecorder-v0", entry_point=cast(EnvCreator, SeedRecorder))


@pytest.mark.parametrize("seed", [0, 7, 2**20])
@pytest.mark.parametrize("steps", [0, 1, 9_999, 10_000, 20_000, 10_000_000])
def test_resumed_envs_never_take_an_evaluation_seed(seed: int, steps: int) -> None:
    num_envs, eval_envs = 64, 1_000
    resumed = set(range(seeds.resumed_env_seed(seed, steps), seeds.resumed_env_seed(seed, steps) + num_envs))
    evaluations = {seed + offset + i for offset in (seeds.FINAL_EVAL, seeds.TRAINING_EVAL) for i in range(eval_envs)}
    training = set(range(seed, seed + num_envs))
    assert not resumed & evaluations and not resumed & training and not training & evaluations
    assert seeds.resumed_env_seed(seed, steps) != seeds.resumed_env_seed(seed, steps + 1)


def test_a_run_resumed_at_step_10000_resets_its_envs_with_no_evaluation_seed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    common: dict[str, Any] = {"progress": False, "tensorboard": False}
    SeedRecorder.resets.clear()
    paused = train(
        env_id="dueldqn-test/SeedRecorder-v0",
        run_dir=run_dir,
        total_steps=10_040,
        num_envs=2,
        learning_starts=10_000,
        buffer_size=1_000,
        eval_episodes=2,
        eval_every=10_020,
        log_interval=1_000,
        seed=3,
        stop_at=10_000,
        **common,
    )
    ckpt = load_checkpoint(list_checkpoints(run_dir)[0])
    assert not paused.finished and ckpt.step == 10_000 and ckpt.states["envs"]["snapshot"] is None  # not restorable
    assert SeedRecorder.resets == [3, 4]  # one reset of the two training envs; their episodes then autoreset

    SeedRecorder.resets.clear()
    train(resume=run_dir, **common)
    resumed = seeds.resumed_env_seed(3, 10_000)
    evaluation, final = 3 + seeds.TRAINING_EVAL, 3 + seeds.FINAL_EVAL
    # The resumed envs first, then the evaluation at step 10,020 and the final one, each from its own seed.
    assert SeedRecorder.resets[:2] == [resumed, resumed + 1]
    assert evaluation in SeedRecorder.resets and final in SeedRecorder.resets
    assert resumed == 3 + 1_000_010_000 and resumed not in {evaluation, final, evaluation + 1, final + 1}
