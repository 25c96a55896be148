"""Every component round-trips its state: after ``b.load_state_dict(a.state_dict())`` the next step is equal.

Also the checkpoint's routing of component states (tensors, arrays, JSON, the replay's own file)
and the refusal of a state that does not fit, naming the component.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from dueldqn.actor import Actor
from dueldqn.checkpoint import load_checkpoint, save_checkpoint
from dueldqn.config import Config
from dueldqn.executors.session import LoopState, NumpyRNG, Session
from dueldqn.exploration import ExplorationDraws
from dueldqn.learner import Learner
from dueldqn.logger import RunLogger, read_metrics
from dueldqn.networks import build_q_network
from dueldqn.replay import Batch

SPACE = gym.spaces.Box(-1, 1, (3,), np.float32)


def _learner(numpy_mlp: bool, seed: int, algo: str = "sarsa") -> Learner:
    torch.manual_seed(seed)
    q_net = build_q_network(SPACE, gym.spaces.Discrete(2), hidden_sizes=(8,))
    config = Config(batch_size=16, numpy_mlp=numpy_mlp, algo=algo)
    return Learner(q_net, config, device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed))


def _batch(seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        rng.standard_normal((16, 3)).astype(np.float32),
        rng.integers(0, 2, 16),
        rng.standard_normal(16).astype(np.float32),
        rng.standard_normal((16, 3)).astype(np.float32),
        (rng.random(16) < 0.2).astype(np.float32),
    )


@pytest.mark.parametrize("numpy_mlp", [True, False])
def test_a_learner_loaded_from_anothers_state_takes_the_same_next_step(numpy_mlp: bool) -> None:
    a, b = _learner(numpy_mlp, seed=0), _learner(numpy_mlp, seed=1)  # other weights, other generator
    for i in range(3):
        a.update(_batch(i), epsilon=0.3, lr=1e-2)  # Adam's moments and SARSA's draws move on
    b.load_state_dict(a.state_dict())
    for i in range(3, 6):
        ua, ub = a.update(_batch(i), epsilon=0.3, lr=1e-2), b.update(_batch(i), epsilon=0.3, lr=1e-2)
        assert torch.equal(ua.loss, ub.loss) and torch.equal(ua.td_abs_B, ub.td_abs_B)
    for name, value in a.online.state_dict().items():
        assert torch.equal(value, b.online.state_dict()[name]), name
    assert all(torch.equal(v, b.target.state_dict()[k]) for k, v in a.target.state_dict().items())


def test_a_learner_refuses_another_networks_state() -> None:
    other = build_q_network(SPACE, gym.spaces.Discrete(2), hidden_sizes=(4,))
    wrong = Learner(other, Config(numpy_mlp=False), device=torch.device("cpu"), generator=torch.Generator())
    with pytest.raises(ValueError, match="does not fit this network"):
        _learner(False, seed=0).load_state_dict(wrong.state_dict())


def test_the_actor_keeps_no_state_and_acts_alike_after_a_round_trip() -> None:
    q_net = build_q_network(SPACE, gym.spaces.Discrete(2), hidden_sizes=(8,))
    a = Actor(q_net, 2, draws=ExplorationDraws(7, 4), device=torch.device("cpu"))
    b = Actor(q_net, 2, draws=ExplorationDraws(7, 4), device=torch.device("cpu"))
    assert a.state_dict() == {}
    b.load_state_dict(a.state_dict())
    obs = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for iteration in (0, 5, 99):
        np.testing.assert_array_equal(a.act(obs, 0.5, iteration), b.act(obs, 0.5, iteration))


def test_loop_state_and_rng_round_trip() -> None:
    a = LoopState(
        obs_NO=np.arange(6.0).reshape(2, 3),
        autoreset_N=np.array([True, False]),
        loss_sum=torch.tensor(2.5),
        steps=40,
        updates=7,
        return_reached_at=40,
    )
    b = LoopState(obs_NO=np.zeros((2, 3)), autoreset_N=np.zeros(2, dtype=bool))
    b.load_state_dict(a.state_dict())
    assert b.steps == 40 and b.updates == 7 and b.loss_sum.item() == 2.5 and b.return_reached_at == 40
    b.load_state_dict({**a.state_dict(), "return_reached_at": -1})  # an older checkpoint's "none"
    assert b.return_reached_at is None
    np.testing.assert_array_equal(b.obs_NO, a.obs_NO)
    np.testing.assert_array_equal(b.autoreset_N, a.autoreset_N)
    ra, rb = NumpyRNG(np.random.default_rng(1)), NumpyRNG(np.random.default_rng(2))
    ra.rng.random(5)
    rb.load_state_dict(json.loads(json.dumps(ra.state_dict())))  # as state.json holds it
    assert ra.rng.random() == rb.rng.random()


def test_the_logger_drops_rows_written_after_its_state(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.episode(10, 1, 5.0, 10)
    state = logger.state_dict()
    logger.episode(20, 2, 6.0, 10)
    logger.load_state_dict(state)
    logger.episode(25, 2, 7.0, 15)
    assert logger.state_dict()["metrics_bytes"] == (tmp_path / "metrics.csv").stat().st_size
    logger.close()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["10", "25"]


def test_the_logger_puts_each_train_row_on_disk_before_the_next_checkpoint(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.episode(10, 1, 5.0, 10)
    logger.train(1000, 0.25, 0.5, 40.0)  # a log interval: the rows so far are readable from another process
    assert [r["step"] for r in read_metrics(tmp_path)["episode"]] == [10.0]
    assert read_metrics(tmp_path)["train"] == [{"step": 1000.0, "loss": 0.25, "epsilon": 0.5, "steps_per_second": 40.0}]
    logger.close()


def test_checkpoints_route_component_states_by_kind_and_load_them_back(tmp_path: Path) -> None:
    states: dict[str, dict[str, Any]] = {
        "learner": {
            "online.w": torch.arange(3.0),
            "generator": torch.zeros(2, dtype=torch.uint8),
            "groups": [{"lr": 1}],
        },
        "loop": {"obs_NO": np.ones((2, 3), np.float32), "steps": 5},
        "replay": {"obs": np.arange(4), "pos_size_capacity": np.array([1, 2, 3])},
        "envs": {"snapshot": None},
    }
    path = save_checkpoint(tmp_path, 5, states, meta={"config": {"env_id": "X"}, "network": {}}, keep=2)
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "replay.npz", "state.json", "tensors.safetensors"]
    saved = json.loads((path / "state.json").read_text())
    assert saved["format"] == 2 and saved["components"]["learner"] == {"groups": [{"lr": 1}]}
    with np.load(path / "replay.npz", allow_pickle=False) as replay:
        assert sorted(replay.files) == ["obs", "pos_size_capacity"]  # its own keys, as before components
    ckpt = load_checkpoint(path)
    assert ckpt.step == 5 and ckpt.meta["config"] == {"env_id": "X"}
    assert sorted(ckpt.states) == ["envs", "learner", "loop", "replay"]
    assert torch.equal(ckpt.states["learner"]["online.w"], torch.arange(3.0))
    assert ckpt.states["loop"]["steps"] == 5 and ckpt.states["loop"]["obs_NO"].shape == (2, 3)
    assert ckpt.states["envs"] == {"snapshot": None}
    with pytest.raises(ValueError, match="cannot hold '/'"):
        save_checkpoint(tmp_path, 6, {"a/b": {}}, meta={}, keep=2)


def test_a_state_that_does_not_fit_is_refused_naming_the_component(tmp_path: Path) -> None:
    session = Session(Config(), tmp_path / "run", None, meta={}, progress=False, tensorboard=False)
    session.components = {"learner": _learner(False, seed=0)}
    wrong = Learner(
        build_q_network(SPACE, gym.spaces.Discrete(3), hidden_sizes=(8,)),
        Config(numpy_mlp=False),
        device=torch.device("cpu"),
        generator=torch.Generator(),
    )
    with pytest.raises(ValueError, match="checkpoint's 'learner' does not fit this run"):
        session.restore({"learner": wrong.state_dict()})
    session.close()
