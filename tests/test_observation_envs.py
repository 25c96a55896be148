"""Training on encoded observations: toy-text and image envs end to end, raw-observation agents, resume,
and envs whose optional packages are missing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import dueldqn.build as build_module
import dueldqn.training as train_module
from dueldqn.agent import Agent
from dueldqn.checkpoint import list_checkpoints, load_checkpoint, save_model
from dueldqn.cli import main
from dueldqn.envs import make_vec_env, raw_observation_space, restore_vector_env_state, vector_env_state
from dueldqn.files import MODEL_FILE
from dueldqn.networks import MinAtarCNN, NatureCNN, QNetwork
from dueldqn.replay import ReplayBuffer
from dueldqn.spaces import EncodeObservation

# A constant learning rate: the resume test raises total_steps, which would move an annealed rate.
QUICK: dict[str, Any] = {
    "learning_starts": 100,
    "batch_size": 16,
    "eval_episodes": 2,
    "log_interval": 100,
    "buffer_size": 1_000,
    "torch_threads": 1,
    "lr_final_fraction": 1.0,
}


class HWCImageEnv(gym.Env[np.ndarray, np.int64]):
    """Random ``(H, W, 3)`` uint8 images; reward 1 for action 1 when the top-left red pixel is bright."""

    def __init__(self, height: int, width: int) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self._obs = np.zeros((height, width, 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._obs = self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)
        return self._obs, {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(action == 1 and self._obs[0, 0, 0] >= 128)
        self._obs = self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)
        return self._obs, reward, False, False, {}


gym.register("dueldqn-test/HWC10x10-v0", entry_point=lambda **_: HWCImageEnv(10, 10), max_episode_steps=20)
gym.register("dueldqn-test/HWC48x64-v0", entry_point=lambda **_: HWCImageEnv(48, 64), max_episode_steps=20)


@pytest.mark.parametrize(
    ("env_id", "encoder_class", "features_in"),
    [("dueldqn-test/HWC10x10-v0", MinAtarCNN, 16 * 8 * 8), ("dueldqn-test/HWC48x64-v0", NatureCNN, 64 * 2 * 4)],
)
def test_hwc_images_train_on_a_conv_encoder_with_plain_replay(
    env_id: str,
    encoder_class: type[MinAtarCNN | NatureCNN],
    features_in: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Generic images are not stacks of consecutive frames: the frame-sharing replay must not be used.
    monkeypatch.setattr(build_module, "FrameReplayBuffer", None)
    replays: list[ReplayBuffer] = []

    def recorded_replay(*a: Any, **k: Any) -> ReplayBuffer:
        replays.append(ReplayBuffer(*a, **k))
        return replays[-1]

    monkeypatch.setattr(build_module, "ReplayBuffer", recorded_replay)
    result = train_module.train(
        env_id=env_id,
        total_steps=300,
        train_frequency=4,
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
        **QUICK,
    )
    height, width = result.agent.observation_space.shape[:2]  # type: ignore[index]
    q_net = result.agent.q_net
    assert isinstance(q_net, QNetwork) and type(q_net.encoder) is encoder_class
    assert q_net.encoder.fc[0].in_features == features_in
    assert replays[0].obs.shape == (1_000, 3, height, width) and replays[0].obs.dtype == np.uint8
    assert result.summary["total_steps"] == 300 and result.summary["updates"] == 51  # iterations 100, 104, ..., 300
    # the stored observations are the env's images, channels first
    raw = np.random.default_rng(0).integers(0, 256, (5, height, width, 3), dtype=np.uint8)
    expected_BA = result.agent.q_values(raw.transpose(0, 3, 1, 2).copy())
    assert expected_BA.shape == (5, 3)
    assert np.array_equal(result.agent.predict(raw)[0], expected_BA.argmax(axis=1))
    loaded = Agent.load(result.run_dir)
    assert loaded.observation_space == result.agent.observation_space
    assert np.array_equal(loaded.predict(raw)[0], expected_BA.argmax(axis=1))


@pytest.fixture(scope="module")
def frozenlake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("frozenlake") / "run"
    train_module.train(
        env_id="FrozenLake-v1",
        total_steps=600,
        checkpoint_every=300,
        keep_checkpoints=3,
        run_dir=run_dir,
        progress=False,
        tensorboard=False,
        **QUICK,
    )
    return run_dir


def test_agent_acts_on_raw_discrete_observations(frozenlake_run: Path) -> None:
    agent = Agent.load(frozenlake_run)
    assert agent.observation_space == gym.spaces.Discrete(16)
    one_hot_SD = np.eye(16, dtype=np.float32)
    greedy_S = agent.q_values(one_hot_SD).argmax(axis=1)
    obs, _ = gym.make("FrozenLake-v1").reset(seed=0)  # a plain int, as a user gets it
    assert isinstance(obs, int)
    # Agent.predict annotates np.ndarray but takes any raw observation (its docstring, and this test): too narrow.
    action, state = agent.predict(obs)
    assert state is None and np.shape(action) == () and action == greedy_S[obs]
    actions, _ = agent.predict(np.arange(16))
    assert np.array_equal(actions, greedy_S)
    network = load_checkpoint(list_checkpoints(frozenlake_run)[0]).meta["network"]
    assert network["obs_space"] == {"type": "Discrete", "n": 16, "start": 0} and network["obs_shape"] == [16]


def test_model_specs_without_a_raw_space_still_load(tmp_path: Path) -> None:
    from dueldqn.agent import build_from_spec

    old_spec = {"obs_shape": [4], "obs_dtype": "float32", "n_actions": 2, "dueling": True, "hidden_sizes": [8]}
    save_model(tmp_path / MODEL_FILE, build_from_spec(old_spec), old_spec)
    agent = Agent.load(tmp_path)
    assert agent.observation_space.shape == (4,) and agent.encoder.is_identity
    assert agent.predict(np.zeros((3, 4), np.float32))[0].shape == (3,)


def test_frozenlake_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    frozenlake_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    train_module.train(
        env_id="FrozenLake-v1",
        total_steps=300,
        checkpoint_every=300,
        run_dir=run_dir,
        progress=False,
        tensorboard=False,
        **QUICK,
    )
    train_module.train(resume=run_dir, total_steps=600, progress=False, tensorboard=False)
    resumed, straight = load_file(run_dir / MODEL_FILE), load_file(frozenlake_run / MODEL_FILE)
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)
    assert (run_dir / "metrics.csv").read_text().count("\n") == (frozenlake_run / "metrics.csv").read_text().count("\n")
    a, b = load_checkpoint(list_checkpoints(run_dir)[0]), load_checkpoint(list_checkpoints(frozenlake_run)[0])
    assert np.array_equal(a.states["loop"]["obs_NO"], b.states["loop"]["obs_NO"])
    for saved in (a, b):  # RecordEpisodeStatistics keeps the wall-clock start of the episode
        del saved.states["envs"]["snapshot"]["envs"][0][0]["episode_start_time"]
    assert a.states["envs"] == b.states["envs"]


def test_the_encoding_wrapper_holds_no_progress_and_state_round_trips() -> None:
    envs = make_vec_env("FrozenLake-v1", num_envs=2, seed=3)
    assert isinstance(envs, gym.vector.SyncVectorEnv)  # its sub-envs are read below
    assert raw_observation_space(envs) == gym.spaces.Discrete(16)
    assert any(isinstance(layer, EncodeObservation) for layer in _layers(envs.envs[0]))
    envs.reset(seed=3)
    for _ in range(7):
        envs.step(np.array([1, 2]))
    state = vector_env_state(envs)
    assert state is not None
    layer_names = [sorted(layer) for layer in state["envs"][0]]
    assert ["_action_space", "_cached_spec", "_metadata"] in layer_names  # the encoder and Box are skipped
    positions = [int(env.unwrapped.s) for env in envs.envs]  # type: ignore[attr-defined]
    expected = [envs.step(np.array([0, 3]))[0] for _ in range(5)]
    restore_vector_env_state(envs, json.loads(json.dumps(state)))
    assert [int(env.unwrapped.s) for env in envs.envs] == positions  # type: ignore[attr-defined]
    again = [envs.step(np.array([0, 3]))[0] for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(again, expected, strict=True))


def _layers(env: gym.Env) -> list[Any]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed here")
def test_a_box2d_env_without_box2d_is_a_clear_command_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"CarRacing-v3 needs a package that is not installed.*gymnasium\[box2d\]"):
        make_vec_env("CarRacing-v3", num_envs=1, seed=0)
    assert main(["train", "--env", "CarRacing-v3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dueldqn train: error: CarRacing-v3 needs a package")
    assert 'pip install "gymnasium[box2d]"' in err


def test_an_atari_id_without_ale_py_says_to_install_the_atari_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` now raises ImportError
    with pytest.raises(ValueError, match=r'ALE/Breakout-v5 needs a package .*pip install "dueldqn\[atari\]"'):
        make_vec_env("ALE/Breakout-v5", num_envs=1, seed=0)


def test_toy_text_ids_take_their_presets_judged_over_1000_episodes() -> None:
    from dueldqn.config import resolve_config

    frozenlake, taxi = resolve_config("FrozenLake-v1"), resolve_config("Taxi-v4")
    assert (frozenlake.env_id, frozenlake.eval_episodes, frozenlake.gamma) == ("FrozenLake-v1", 1_000, 0.99)
    assert (taxi.env_id, taxi.eval_episodes, taxi.algo) == ("Taxi-v4", 1_000, "double")
    assert taxi.buffer_size * 500 * 4 * 2 <= 256 * 2**20  # one-hot replay (obs and next obs) under 256 MiB


def test_minatar_ids_without_minatar_say_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minatar", None)
    monkeypatch.setitem(sys.modules, "minatar.gym", None)
    with pytest.raises(ValueError, match=r"MinAtar/Breakout-v1 needs a package .*pip install minatar"):
        make_vec_env("MinAtar/Breakout-v1", num_envs=1, seed=0)


def _broken_env(**kwargs: object) -> gym.Env:
    raise ImportError("cannot import name 'thing' from partially initialized module 'somewhere'")


def test_an_import_error_that_is_not_a_missing_package_is_not_disguised_as_one() -> None:
    gym.register(id="BrokenImport-v0", entry_point=_broken_env)
    try:
        with pytest.raises(ImportError, match="partially initialized") as info:
            make_vec_env("BrokenImport-v0", num_envs=1, seed=0)
        assert not isinstance(info.value, ValueError)
    finally:
        del gym.registry["BrokenImport-v0"]
