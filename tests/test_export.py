"""ONNX export: onnxruntime's Q-values and actions equal torch's on random and real observations.

Three kinds of run: an MLP on CartPole (a float Box), Taxi's Discrete states (one-hot in the graph)
and the spec's DuelDQN on Breakout's uint8 frames (scaled in the graph), plus a Dict space with every
kind of leaf. The reference is what :class:`dueldqn.agent.Agent` computes: the encoder in numpy, the
network in torch. Runs are tiny: the values, not the learning, are under test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from dueldqn import train
from dueldqn.agent import Agent, network_spec
from dueldqn.checkpoint import save_model
from dueldqn.cli import main
from dueldqn.export import OPSET, Preprocess, description_path, export_onnx, export_run, q_values_of
from dueldqn.files import MODEL_FILE
from dueldqn.networks import DistributionalQNetwork, DuelDQN, build_q_network
from dueldqn.spaces import ObservationEncoder
from dueldqn.tensors import as_network_input

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
pytestmark = pytest.mark.slow  # each torch.export trace takes seconds
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="running the exported model needs onnxruntime: dueldqn[export]")
TINY: dict[str, Any] = {
    "total_steps": 300,
    "learning_starts": 100,
    "batch_size": 16,
    "eval_episodes": 1,
    "log_interval": 100,
    "buffer_size": 1_000,
    "checkpoint_every": 0,
    "torch_threads": 1,
}
ATOL, RTOL = 1e-5, 1e-4  # onnxruntime's kernels sum in another order than torch's


def _leaf(obs: Any, path: list[str | int]) -> Any:
    for key in path:
        obs = obs[key]
    return obs


def run_onnx(model: Path, obs_batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(q_values (B, A), action (B,))`` of the exported model, fed as its JSON says."""
    import onnxruntime as ort

    description = json.loads(description_path(model).read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = {i["name"]: np.asarray(_leaf(obs_batch, i["path"])).astype(i["dtype"]) for i in description["inputs"]}
    q_BA, action_B = session.run(["q_values", "action"], feeds)
    return q_BA, action_B


def torch_q(agent: Agent, obs_batch: Any) -> np.ndarray:
    """Q-values ``(B, A)`` as :meth:`Agent.predict` computes them: numpy encoding, torch network."""
    return agent.q_values(agent.encoder.encode(obs_batch))


def assert_same_policy(model: Path, agent: Agent, obs_batch: Any) -> None:
    """Q-values within float tolerance; the greedy action equal wherever the best two are not a float tie apart."""
    q_BA, action_B = run_onnx(model, obs_batch)
    expected_BA = torch_q(agent, obs_batch)
    assert q_BA.shape == expected_BA.shape and q_BA.dtype == np.float32 and action_B.dtype == np.int64
    np.testing.assert_allclose(q_BA, expected_BA, atol=ATOL, rtol=RTOL)
    np.testing.assert_array_equal(action_B, q_BA.argmax(axis=1))  # the graph's own argmax, first of equal maxima
    top2_B2 = np.sort(expected_BA, axis=1)[:, -2:]
    clear_B = top2_B2[:, 1] - top2_B2[:, 0] > 10 * (ATOL + RTOL * np.abs(top2_B2[:, 1]))
    assert clear_B.mean() > 0.5  # the comparison below is not vacuous
    np.testing.assert_array_equal(action_B[clear_B], agent.predict(obs_batch)[0][clear_B])


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    train(env_id="CartPole-v1", run_dir=run_dir, progress=False, tensorboard=False, **TINY)
    return run_dir


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("taxi") / "run"
    train(env_id="Taxi-v4", run_dir=run_dir, progress=False, tensorboard=False, **TINY)
    return run_dir


def _rollout(env: gym.Env, agent: Agent, steps: int, seed: int) -> np.ndarray:
    """Observations met by the agent's epsilon-greedy policy (epsilon 0.3), resetting at episode ends."""
    agent.epsilon = 0.3
    obs, _ = env.reset(seed=seed)
    seen = []
    for _ in range(steps):
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(agent.predict(obs, deterministic=False)[0]))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(seen)


@needs_ort
def test_mlp_run_exports_and_onnxruntime_equals_torch(cartpole_run: Path) -> None:
    model = export_run(cartpole_run)
    assert model == cartpole_run / "model.onnx"
    agent = Agent.load(cartpole_run, seed=0)
    real_BD = _rollout(gym.make("CartPole-v1"), agent, 300, seed=5)
    assert_same_policy(model, agent, real_BD)
    rng = np.random.default_rng(0)
    random_BD = rng.normal(0.0, 2.0, size=(257, 4)).astype(np.float32)
    assert_same_policy(model, agent, random_BD)
    assert_same_policy(model, agent, random_BD[:1])  # the batch dimension is dynamic, 1 included


@needs_ort
def test_a_distributional_noisy_run_exports_its_expected_q(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(
        env_id="CartPole-v1",
        run_dir=run_dir,
        progress=False,
        tensorboard=False,
        distributional=True,
        noisy=True,
        numpy_mlp=False,
        **TINY,
    )
    model = export_run(run_dir)
    agent = Agent.load(run_dir, seed=0)  # eval mode: the noisy layers' mean weights, as the export takes them
    rng = np.random.default_rng(1)
    random_BD = rng.normal(0.0, 2.0, size=(64, 4)).astype(np.float32)
    assert_same_policy(model, agent, random_BD)
    q_BA, _ = run_onnx(model, random_BD)
    assert isinstance(agent.q_net, DistributionalQNetwork)
    with torch.no_grad():  # the expectation over the atoms, computed here from the head's log-probabilities
        probs_BAZ = agent.q_net.log_probs(torch.from_numpy(random_BD)).exp()
        expected_BA = (probs_BAZ * agent.q_net.support_Z).sum(dim=2).numpy()
    np.testing.assert_allclose(q_BA, expected_BA, atol=1e-5, rtol=1e-5)


@needs_ort
def test_discrete_observation_run_one_hot_in_the_graph(taxi_run: Path) -> None:
    model = export_run(taxi_run)
    agent = Agent.load(taxi_run, seed=0)
    assert agent.observation_space == gym.spaces.Discrete(500)
    assert_same_policy(model, agent, np.arange(500))  # every state Taxi has
    real_B = _rollout(gym.make("Taxi-v4"), agent, 200, seed=1)
    assert_same_policy(model, agent, real_B)
    description = json.loads(description_path(model).read_text())
    assert description["inputs"] == [
        {
            "name": "obs",
            "path": [],
            "shape": ["batch"],
            "dtype": "int64",
            "encoding": "one-hot of Discrete Discrete(500) (500 columns)",
        }
    ]
    assert description["network_input"] == {"shape": ["batch", 500], "dtype": "float32"}


@pytest.fixture(scope="module")
def breakout_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised DuelDQN saved as a Breakout run: the spec's network, uint8 frame stacks."""
    run_dir = tmp_path_factory.mktemp("breakout")
    torch.manual_seed(0)
    frames = gym.spaces.Box(0, 255, DuelDQN.OBS_SHAPE, dtype=np.uint8)
    save_model(run_dir / MODEL_FILE, DuelDQN(), network_spec(frames, 4, True, (64, 64), frames))
    return run_dir


@needs_ort
def test_dueldqn_on_atari_frames_scales_uint8_in_the_graph(breakout_run: Path) -> None:
    pytest.importorskip("ale_py", reason="Breakout frames need ale-py: pip install dueldqn[atari]")
    pytest.importorskip("cv2", reason="AtariPreprocessing needs opencv: pip install dueldqn[atari]")
    from dueldqn.envs import make_eval_env

    model = export_run(breakout_run)
    agent = Agent.load(breakout_run, seed=0)
    assert isinstance(agent.q_net, DuelDQN)
    env = make_eval_env("ALE/Breakout-v5", seed=0)
    real_BCHW = _rollout(env, agent, 48, seed=0)
    env.close()
    assert real_BCHW.dtype == np.uint8 and real_BCHW.shape == (48, 4, 84, 84) and real_BCHW.std() > 0
    assert_same_policy(model, agent, real_BCHW)
    random_BCHW = np.random.default_rng(1).integers(0, 256, size=(5, 4, 84, 84), dtype=np.uint8)
    assert_same_policy(model, agent, random_BCHW)
    description = json.loads(description_path(model).read_text())
    assert description["inputs"][0]["dtype"] == "uint8" and description["inputs"][0]["shape"] == ["batch", 4, 84, 84]
    assert "scaled to [0, 1]" in description["inputs"][0]["encoding"]


COMPOSITE = gym.spaces.Dict(
    {
        "grid": gym.spaces.MultiDiscrete([3, 2, 4], start=[1, -1, 0]),
        "level": gym.spaces.Discrete(5, start=2),
        "bits": gym.spaces.MultiBinary(3),
        "pos": gym.spaces.Box(-2.0, 2.0, (2, 2), np.float64),
        "count": gym.spaces.Box(0, 9, (3,), np.int32),
    }
)
SPACES = {
    "cartpole": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
    "discrete": gym.spaces.Discrete(7, start=-3),
    "composite": COMPOSITE,
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(0, 1, (2,), np.float32))),
    "ram": gym.spaces.Box(0, 255, (16,), np.uint8),  # a uint8 vector is not scaled
    "hwc image": gym.spaces.Box(0, 255, (12, 10, 3), np.uint8),
    "chw image": gym.spaces.Box(0, 255, (2, 40, 40), np.uint8),
    "int grid": gym.spaces.Box(0, 3, (5, 6), np.int64),
}


def _sample_batch(space: gym.Space[Any], n: int, seed: int) -> Any:
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    out = gym.vector.utils.create_empty_array(space, n)
    assert out is not None  # None only for a custom Space subclass
    return gym.vector.utils.concatenate(space, samples, out)


def _agent_for(space: gym.Space[Any]) -> Agent:
    torch.manual_seed(0)
    encoded = ObservationEncoder(space).encoded_space
    return Agent(build_q_network(encoded, gym.spaces.Discrete(5), hidden_sizes=(32,)), space, 5)


@pytest.mark.parametrize("name", list(SPACES))
def test_preprocessing_in_torch_equals_the_numpy_encoder(name: str) -> None:
    """The graph's preprocessing, before ONNX, gives what ``as_network_input(encoder.encode(obs))`` does."""
    space = SPACES[name]
    encoder = ObservationEncoder(space)
    preprocess = Preprocess(encoder)
    obs = _sample_batch(space, 9, seed=3)
    leaves = [torch.from_numpy(np.asarray(_leaf(obs, list(i.path)))) for i in preprocess.inputs]
    expected = as_network_input(encoder.encode(obs), torch.device("cpu"))
    got = preprocess(*leaves)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=0)
    for part in encoder._parts:  # every one-hot block has one 1 per component (Discrete 1, MultiDiscrete K)
        if part.one_hot is not None:
            block_BM = got[:, part.offset : part.offset + part.size]
            assert set(block_BM.unique().tolist()) <= {0.0, 1.0}
            assert (block_BM.sum(dim=1) == len(part.one_hot[0])).all()


@needs_ort
@pytest.mark.parametrize("name", ["composite", "tuple", "hwc image", "ram", "int grid"])
def test_every_observation_encoding_exports(name: str, tmp_path: Path) -> None:
    space = SPACES[name]
    agent = _agent_for(space)
    export_onnx(agent.q_net, space, tmp_path / "model.onnx")
    assert_same_policy(tmp_path / "model.onnx", agent, _sample_batch(space, 64, seed=4))


@needs_ort
def test_composite_space_takes_one_named_input_per_leaf(tmp_path: Path) -> None:
    description = export_onnx(_agent_for(COMPOSITE).q_net, COMPOSITE, tmp_path / "m.onnx")
    by_name = {i["name"]: i for i in description["inputs"]}
    assert list(by_name) == ["obs.bits", "obs.count", "obs.grid", "obs.level", "obs.pos"]  # gymnasium sorts keys
    assert by_name["obs.grid"]["shape"] == ["batch", 3] and by_name["obs.grid"]["dtype"] == "int64"
    assert by_name["obs.level"]["shape"] == ["batch"] and by_name["obs.pos"]["dtype"] == "float64"
    assert description["network_input"]["shape"] == ["batch", 3 + 3 + (3 + 2 + 4) + 5 + 4]
    # A value a Discrete space never gives (below its start) is a row with no hot column, not an error.
    obs = _sample_batch(COMPOSITE, 2, seed=0)
    obs["level"] = np.array([0, 2])
    leaves = [torch.from_numpy(np.asarray(obs[key])) for key in ("bits", "count", "grid", "level", "pos")]
    level_cols = Preprocess(ObservationEncoder(COMPOSITE))(*leaves)[:, 3 + 3 + 9 : 3 + 3 + 9 + 5]
    np.testing.assert_array_equal(level_cols.numpy(), [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])


@needs_ort
def test_description_json_and_no_temporary_files_left(cartpole_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "policy.onnx"
    assert main(["export", str(cartpole_run), "--format", "onnx", "--output", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx", "policy.onnx.json"]

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not strict JSON")

    description = json.loads((tmp_path / "policy.onnx.json").read_text(), parse_constant=refuse)
    assert description["format"] == "onnx" and description["file"] == "policy.onnx" and description["opset"] == OPSET
    assert description["n_actions"] == 2 and description["encoding"] == "identity"
    space = description["observation_space"]
    assert space["type"] == "Box" and space["shape"] == [4] and space["high"][1] == "inf" and space["low"][1] == "-inf"
    assert [o["name"] for o in description["outputs"]] == ["q_values", "action"]
    assert description["outputs"][0]["shape"] == ["batch", 2] and description["outputs"][1]["dtype"] == "int64"
    assert description["versions"]["torch"] == metadata.version("torch")
    assert all(description["versions"][k] for k in ("dueldqn", "torch", "onnx", "onnxscript"))
    weights = (cartpole_run / MODEL_FILE).read_bytes()
    assert description["source"]["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    import onnx

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["obs"] and [o.name for o in graph.output] == ["q_values", "action"]


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no model\.safetensors; expected a finished run"):
        export_run(tmp_path / "empty")
    with pytest.raises(ValueError, match="is not a run directory"):
        export_run(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"unknown export format 'tflite'; expected one of: onnx"):
        export_run(tmp_path / "empty", fmt="tflite")
    assert main(["export", str(tmp_path / "empty"), "--format", "torchscript"]) == 2
    assert "dueldqn export: error: unknown export format 'torchscript'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "holds no model.safetensors" in capsys.readouterr().err
    assert isinstance(SPACES["cartpole"], gym.spaces.Box)
    save_model(
        tmp_path / "empty" / MODEL_FILE,
        _agent_for(SPACES["cartpole"]).q_net,
        network_spec(SPACES["cartpole"], 5, True, (32,)),
    )
    with pytest.raises(ValueError, match=r"directory .*nowhere does not exist"):
        export_run(tmp_path / "empty", output=tmp_path / "nowhere" / "m.onnx")


def test_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dueldqn.export as export

    monkeypatch.setattr(export, "installed_version", lambda name: None if name == "onnxscript" else "1")
    with pytest.raises(ValueError, match=r"ONNX export needs onnxscript: pip install 'dueldqn\[export\]'"):
        export_onnx(_agent_for(SPACES["cartpole"]).q_net, SPACES["cartpole"], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_q_values_of_passes_q_and_refuses_a_distribution() -> None:
    net = torch.nn.Identity()
    q_BA = torch.arange(6.0).reshape(2, 3)
    assert q_values_of(net, q_BA) is q_BA
    with pytest.raises(ValueError, match=r"returned shape \(2, 3, 51\).*distributional head"):
        q_values_of(net, torch.zeros(2, 3, 51))


@pytest.mark.slow
def test_training_and_acting_import_no_export_dependency() -> None:
    # The export extra stays optional: only dueldqn.export's functions import onnx, and only when called.
    import subprocess
    import sys

    code = (
        "import sys, dueldqn, dueldqn.cli, dueldqn.training, dueldqn.agent, dueldqn.export\n"
        "print(sorted({'onnx', 'onnxscript', 'onnxruntime'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
