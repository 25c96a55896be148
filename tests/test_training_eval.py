"""Evaluations during training (``eval_every``) and stopping at a return (``stop_return``), local loop.

The Ape-X driver runs the same :class:`~dueldqn.evaluate.TrainingEvaluation`: tests/test_apex.py.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from dueldqn import seeds
from dueldqn.agent import Agent
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import Config
from dueldqn.evaluate import evaluate_agent
from dueldqn.logger import read_metrics
from dueldqn.training import train

RUN: dict[str, Any] = {
    "env_id": "CartPole-v1",
    "total_steps": 600,
    "learning_starts": 100,
    "batch_size": 16,
    "hidden_sizes": (16,),
    "eval_episodes": 3,
    "checkpoint_every": 200,
    "keep_checkpoints": 3,
    "log_interval": 100,
    "progress": False,
    "tensorboard": False,
}


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    train(run_dir=run_dir, **RUN)
    return run_dir


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("evaluated") / "run"
    train(run_dir=run_dir, eval_every=200, **RUN)
    return run_dir


def _same_file(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _online(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    ckpt = next(load_checkpoint(p) for p in list_checkpoints(run_dir) if load_checkpoint(p).step == step)
    return {k: v for k, v in ckpt.states["learner"].items() if k.startswith("online.")}


def test_evaluations_change_nothing_of_the_training(plain_run: Path, evaluated_run: Path) -> None:
    assert _same_file(plain_run / "model.safetensors", evaluated_run / "model.safetensors")
    for step in (200, 400, 600):
        a, b = _online(plain_run, step), _online(evaluated_run, step)
        assert a and all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(plain_run).get("eval", []) == []


def test_a_run_with_evaluations_resumes_exactly(evaluated_run: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "run"
    shutil.copytree(evaluated_run, resumed)
    shutil.rmtree(list_checkpoints(resumed)[0])  # back to step 400 (its evaluation came before it)
    assert load_checkpoint(list_checkpoints(resumed)[0]).step == 400
    train(resume=resumed, progress=False, tensorboard=False)
    assert _same_file(resumed / "model.safetensors", evaluated_run / "model.safetensors")
    assert read_metrics(resumed)["eval"] == read_metrics(evaluated_run)["eval"]  # 200 and 400 kept, 600 again


def test_each_evaluation_row_is_the_checkpointed_network_played_on_its_own_seed(evaluated_run: Path) -> None:
    rows = read_metrics(evaluated_run)["eval"]
    assert [row["step"] for row in rows] == [200, 400, 600] and all(row["episode"] == 3 for row in rows)
    # The run's seed is 0: its evaluations reset their env with seed 0 + seeds.TRAINING_EVAL.
    agent = Agent.load(evaluated_run / "model.safetensors")
    for row in rows:
        online = _online(evaluated_run, int(row["step"]))
        agent.q_net.load_state_dict({k.removeprefix("online."): v for k, v in online.items()})
        greedy = Agent(agent.q_net, agent.observation_space, agent.n_actions)
        again = evaluate_agent("CartPole-v1", greedy, episodes=3, epsilon=0.0, seed=seeds.TRAINING_EVAL)
        assert row["return"] == pytest.approx(again.mean, rel=1e-5)
        assert row["length"] == pytest.approx(sum(again.lengths) / 3, rel=1e-5)


def test_stop_return_ends_the_run_at_the_first_evaluation_that_reaches_it(evaluated_run: Path, tmp_path: Path) -> None:
    # Any policy keeps CartPole's pole up for a few steps: a return of 1 is reached at the first evaluation.
    stopped = train(run_dir=tmp_path / "stop", eval_every=200, stop_return=1.0, **RUN)
    assert stopped.finished and stopped.eval is not None
    assert stopped.summary["total_steps"] == 200 and stopped.summary["stop_return_reached_at"] == 200
    assert [row["step"] for row in read_metrics(stopped.run_dir)["eval"]] == [200]
    assert load_checkpoint(list_checkpoints(stopped.run_dir)[0]).step == 200
    a, b = _online(stopped.run_dir, 200), _online(evaluated_run, 200)  # where the longer run was at step 200
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A stopped run stays stopped: a resume (even with more steps) finishes it again without training on.
    model = (stopped.run_dir / "model.safetensors").read_bytes()
    again = train(resume=stopped.run_dir, total_steps=800, progress=False, tensorboard=False)
    assert again.finished and again.summary["total_steps"] == 200 and again.summary["stop_return_reached_at"] == 200
    assert [row["step"] for row in read_metrics(stopped.run_dir)["eval"]] == [200]
    assert (stopped.run_dir / "model.safetensors").read_bytes() == model
    # Never reached: the run goes to total_steps and says so.
    never = train(run_dir=tmp_path / "never", eval_every=200, stop_return=1e9, **RUN)
    assert never.summary["total_steps"] == 600 and never.summary["stop_return_reached_at"] is None
    assert _same_file(never.run_dir / "model.safetensors", evaluated_run / "model.safetensors")


def test_stop_return_needs_evaluations_and_a_number() -> None:
    with pytest.raises(ValueError, match="stop_return needs evaluations during training: set eval_every"):
        Config(stop_return=475.0)
    with pytest.raises(ValueError, match="stop_return must be a number"):
        Config(stop_return=float("nan"), eval_every=1000)
    with pytest.raises(ValueError, match="eval_every must be a non-negative integer"):
        Config(eval_every=-5)
    assert dataclasses.replace(Config(), eval_every=1000, stop_return=475).stop_return == 475
