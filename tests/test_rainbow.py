"""Rainbow's parts: the C51 projection and loss, the distributional dueling head, noisy nets, and runs with them."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dueldqn.agent import Agent, network_kwargs, network_spec, same_network
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import Config, resolve_config
from dueldqn.executors.env_runner import EnvRunner
from dueldqn.executors.replay_shard import ReplayShard
from dueldqn.learner import Learner
from dueldqn.networks import (
    CategoricalDuelingHead,
    DistributionalQNetwork,
    DuelDQN,
    NoisyLinear,
    build_q_network,
    reset_noise,
)
from dueldqn.numpy_mlp import mlp_layers, numpy_greedy
from dueldqn.replay import PrioritizedReplay
from dueldqn.replay.batch import Batch
from dueldqn.targets import (
    categorical_loss,
    categorical_next_distribution,
    categorical_projection,
)
from dueldqn.training import train
from dueldqn.tune.space import default_space

SUPPORT = torch.arange(5.0)  # z = 0, 1, 2, 3, 4: v_min 0, v_max 4, dz 1
UNIFORM = torch.full((5,), 0.2)
CARTPOLE = gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)


def one_hot(j: int) -> torch.Tensor:
    return torch.eye(5)[j]


def project(reward: float, probs_Z: torch.Tensor, gamma: float, terminated: bool = False) -> torch.Tensor:
    return categorical_projection(torch.tensor([reward]), torch.tensor([terminated]), probs_Z[None], SUPPORT, gamma)[0]


# -- the categorical projection, hand-computed ------------------------------------------------------


def test_atoms_between_two_support_points_split_their_mass_by_closeness() -> None:
    # Tz = 0.5 + 1 * 1 = 1.5: half to z=1, half to z=2.
    torch.testing.assert_close(project(0.5, one_hot(1), 1.0), torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0]))
    # Tz = 0.5 + 0.5 z = 0.5, 1, 1.5, 2, 2.5 with 0.2 each: atoms on a support point keep all of their mass.
    torch.testing.assert_close(project(0.5, UNIFORM, 0.5), torch.tensor([0.1, 0.4, 0.4, 0.1, 0.0]))
    # Tz = 0.25 + 0.5 * 3 = 1.75: a quarter to z=1, three quarters to z=2.
    torch.testing.assert_close(project(0.25, one_hot(3), 0.5), torch.tensor([0.0, 0.25, 0.75, 0.0, 0.0]))


def test_atoms_beyond_the_support_are_clipped_to_its_ends() -> None:
    # Tz = 3, 4, 5, 6, 7 -> 3, 4, 4, 4, 4.
    torch.testing.assert_close(project(3.0, UNIFORM, 1.0), torch.tensor([0.0, 0.0, 0.0, 0.2, 0.8]))
    torch.testing.assert_close(project(-10.0, UNIFORM, 0.9), torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))


def test_terminated_puts_all_mass_at_the_reward_and_truncated_bootstraps() -> None:
    # terminated: Tz = 2.25 for every atom, whatever s' holds.
    torch.testing.assert_close(project(2.25, UNIFORM, 0.5, terminated=True), torch.tensor([0, 0, 0.75, 0.25, 0]))
    # truncated (terminated false): bootstrapped, Tz = 1 + 0.5 * 3 = 2.5.
    torch.testing.assert_close(project(1.0, one_hot(3), 0.5), torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0]))
    torch.testing.assert_close(project(1.0, one_hot(3), 0.5, terminated=True), one_hot(1))


def test_per_transition_n_step_discounts() -> None:
    # gamma^k per row: k=0 (gamma 1) keeps z=2; gamma^2 = 0.25 moves it to 0.5.
    m_BZ = categorical_projection(
        torch.tensor([0.0, 0.0]),
        torch.tensor([False, False]),
        one_hot(2).repeat(2, 1),
        SUPPORT,
        torch.tensor([1.0, 0.25]),
    )
    torch.testing.assert_close(m_BZ, torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]]))
    # float64 discounts and rewards (numpy's) project float32 distributions without a dtype clash.
    mixed_BZ = categorical_projection(
        torch.zeros(2, dtype=torch.float64),
        torch.zeros(2),
        one_hot(2).repeat(2, 1),
        SUPPORT,
        torch.tensor([1.0, 0.25], dtype=torch.float64),
    )
    assert mixed_BZ.dtype == torch.float32
    torch.testing.assert_close(mixed_BZ, m_BZ)


def _slow_projection(rewards, terminated, probs, support, discounts):  # type: ignore[no-untyped-def]
    """Bellemare et al. (2017), Algorithm 1, one atom at a time in float64."""
    v_min, v_max, atoms = support[0], support[-1], len(support)
    dz = (v_max - v_min) / (atoms - 1)
    out = np.zeros_like(probs)
    for i in range(len(rewards)):
        for j in range(atoms):
            tz = min(max(rewards[i] + discounts[i] * (1 - terminated[i]) * support[j], v_min), v_max)
            b = (tz - v_min) / dz
            lo, up = math.floor(b), math.ceil(b)
            if lo == up:
                out[i, lo] += probs[i, j]
            else:
                out[i, lo] += probs[i, j] * (up - b)
                out[i, up] += probs[i, j] * (b - lo)
    return out


def test_projection_matches_a_slow_loop_and_conserves_mass() -> None:
    rng = np.random.default_rng(0)
    B, Z = 64, 11
    support = np.linspace(-5.0, 5.0, Z)
    rewards = rng.choice([-7.0, -1.0, 0.0, 0.5, 1.0, 2.0, 7.0], B) + rng.choice([0.0, 0.3], B)
    terminated = rng.random(B) < 0.3
    discounts = 0.99 ** rng.integers(0, 4, B)
    probs = rng.dirichlet(np.ones(Z), B)
    m_BZ = categorical_projection(
        torch.tensor(rewards),
        torch.tensor(terminated),
        torch.tensor(probs),
        torch.tensor(support),
        torch.tensor(discounts),
    )
    np.testing.assert_allclose(
        m_BZ.numpy(), _slow_projection(rewards, terminated, probs, support, discounts), atol=1e-9
    )
    np.testing.assert_allclose(m_BZ.sum(dim=1).numpy(), 1.0, atol=1e-9)


def test_projection_checks_shapes() -> None:
    r, t = torch.zeros(2), torch.zeros(2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        categorical_projection(r, t, torch.zeros(2, 4), SUPPORT, 0.9)
    with pytest.raises(ValueError, match="Z >= 2"):
        categorical_projection(r, t, torch.zeros(2, 1), torch.zeros(1), 0.9)
    with pytest.raises(ValueError, match="increasing"):
        categorical_projection(r, t, torch.zeros(2, 5), SUPPORT.flip(0), 0.9)
    with pytest.raises(ValueError, match=r"discounts of shape \(2,\)"):
        categorical_projection(r, t, torch.zeros(2, 5), SUPPORT, torch.ones(3))
    with pytest.raises(ValueError, match=r"rewards and terminated of shape \(2,\)"):
        categorical_projection(torch.zeros(3), t, torch.zeros(2, 5), SUPPORT, 0.9)


# -- which next distribution each algorithm bootstraps from, and the loss ---------------------------


def test_next_distribution_by_algorithm() -> None:
    support = torch.tensor([0.0, 1.0, 2.0])
    # Action 0: mass at 2 (expected Q 2); action 1: mass at 1 (expected Q 1).
    probs_BAZ = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    online_q_BA = torch.tensor([[0.0, 5.0]])  # the online network prefers action 1
    torch.testing.assert_close(categorical_next_distribution("dqn", probs_BAZ, None, support, 0.0), probs_BAZ[:, 0])
    torch.testing.assert_close(
        categorical_next_distribution("double", probs_BAZ, online_q_BA, support, 0.0), probs_BAZ[:, 1]
    )
    # Expected SARSA with epsilon 0.5 over 2 actions: pi = (0.25, 0.75), the mixture of the two distributions.
    torch.testing.assert_close(
        categorical_next_distribution("expected-sarsa", probs_BAZ, online_q_BA, support, 0.5),
        torch.tensor([[0.0, 0.75, 0.25]]),
    )
    # SARSA at epsilon 0 draws the greedy action of the online network.
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(
        categorical_next_distribution("sarsa", probs_BAZ, online_q_BA, support, 0.0, gen), probs_BAZ[:, 1]
    )
    with pytest.raises(ValueError, match="online expected Q"):
        categorical_next_distribution("double", probs_BAZ, None, support, 0.0)


def test_cross_entropy_loss_and_its_priorities() -> None:
    log_p_BZ = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    m_BZ = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    ce_B = torch.tensor([math.log(2), -0.5 * math.log(0.25) - 0.5 * math.log(0.75)])
    loss, priority_B = categorical_loss(log_p_BZ, m_BZ)
    torch.testing.assert_close(priority_B, ce_B)
    torch.testing.assert_close(loss, ce_B.mean())
    loss_w, _ = categorical_loss(log_p_BZ, m_BZ, torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(loss_w, (ce_B[0] + 0.5 * ce_B[1]) / 2)
    with pytest.raises(ValueError, match=r"weights of shape \(2,\)"):
        categorical_loss(log_p_BZ, m_BZ, torch.ones(3))


# -- networks ------------------------------------------------------------------------------------------


def test_distributional_dueling_head_and_expected_q() -> None:
    torch.manual_seed(0)
    net = build_q_network(CARTPOLE, gym.spaces.Discrete(3), atoms=7, v_min=-3.0, v_max=3.0, hidden_sizes=(16,))
    assert isinstance(net, DistributionalQNetwork)
    obs = torch.randn(5, 4)
    log_p_BAZ = net.log_probs(obs)
    assert log_p_BAZ.shape == (5, 3, 7)
    torch.testing.assert_close(log_p_BAZ.exp().sum(dim=2), torch.ones(5, 3))
    torch.testing.assert_close(net(obs), (log_p_BAZ.exp() * torch.linspace(-3, 3, 7)).sum(dim=2))
    # The dueling identity atom by atom: the logits' mean over actions is the value stream.
    features = net.encoder(obs)
    assert isinstance(net.head, CategoricalDuelingHead)
    logits_BAZ = net.head(features)
    torch.testing.assert_close(logits_BAZ.mean(dim=1), net.head.value(features))


def test_the_spec_network_stays_dueldqn_and_other_heads_are_other_classes() -> None:
    frames, four = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8), gym.spaces.Discrete(4)
    assert type(build_q_network(frames, four)) is DuelDQN
    assert not isinstance(build_q_network(frames, four, atoms=51), DuelDQN)
    assert not isinstance(build_q_network(frames, four, noisy_sigma0=0.5), DuelDQN)
    minatar = build_q_network(gym.spaces.Box(0, 1, (4, 10, 10), dtype=np.float32), four, atoms=51)
    assert minatar(torch.zeros(2, 4, 10, 10)).shape == (2, 4)


def test_noisy_linear_initialisation_noise_and_mean_weights() -> None:
    torch.manual_seed(0)
    layer = NoisyLinear(16, 3, sigma0=0.5)
    assert layer.weight_mu.abs().max() <= 0.25 and layer.bias_mu.abs().max() <= 0.25  # 1 / sqrt(16)
    torch.testing.assert_close(layer.weight_sigma, torch.full((3, 16), 0.125))  # 0.5 / sqrt(16)
    layer.reset_noise(torch.Generator().manual_seed(3))
    eps = torch.randn(16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(layer.noise_in_I, eps.sign() * eps.abs().sqrt())  # f(x) = sgn(x) sqrt(|x|)
    x = torch.randn(2, 16)
    w = layer.weight_mu + layer.weight_sigma * torch.outer(layer.noise_out_O, layer.noise_in_I)
    torch.testing.assert_close(layer(x), x @ w.T + layer.bias_mu + layer.bias_sigma * layer.noise_out_O)
    torch.testing.assert_close(layer.eval()(x), x @ layer.weight_mu.T + layer.bias_mu)
    # Noise changes only when drawn, and the same generator state draws the same noise.
    layer.train()
    before = layer(x)
    torch.testing.assert_close(layer(x), before)
    layer.reset_noise(torch.Generator().manual_seed(3))
    torch.testing.assert_close(layer(x), before)


def test_distributional_and_noisy_mlps_run_on_torch() -> None:
    for kwargs in ({"atoms": 51}, {"noisy_sigma0": 0.5}):
        net = build_q_network(CARTPOLE, gym.spaces.Discrete(2), **kwargs)
        assert mlp_layers(net) is None and numpy_greedy(net) is None
    config = Config(distributional=True)
    net = build_q_network(CARTPOLE, gym.spaces.Discrete(2), **network_kwargs(config))
    learner = Learner(net, config, device=torch.device("cpu"), generator=torch.Generator())
    assert isinstance(learner.optimizer, torch.optim.AdamW) and learner._numpy_mlp is None


def test_plain_heads_keep_their_spec_so_earlier_runs_still_resume() -> None:
    spec = network_spec(CARTPOLE, 2, True, (64, 64))
    assert "distributional" not in spec and "noisy" not in spec
    saved = {k: v for k, v in spec.items() if k != "obs_space"}  # as written before obs_space existed
    assert same_network(saved, spec)


# -- config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"atoms": 1}, "atoms"),
        ({"atoms": 2.5}, "atoms"),
        ({"v_min": 1.0, "v_max": 1.0}, "v_min"),
        ({"v_max": math.inf}, "v_max"),
        ({"v_min": math.nan}, "v_min"),
        ({"noisy_sigma0": 0.0}, "noisy_sigma0"),
        ({"distributional": True, "loss": "huber"}, "loss"),
    ],
)
def test_bad_rainbow_settings_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        Config(**changes)  # type: ignore[arg-type]


def test_tune_space_of_a_distributional_base_searches_atoms_not_the_loss() -> None:
    space = default_space(Config(distributional=True, noisy=True))
    assert "loss" not in space and space["atoms"] == {"choices": [21, 51, 101]} and "noisy_sigma0" in space
    assert "atoms" not in default_space(Config()) and "loss" in default_space(Config())


# -- learner and runs -------------------------------------------------------------------------------


def test_a_c51_update_minimises_the_weighted_cross_entropy_and_returns_it_per_transition() -> None:
    torch.manual_seed(0)
    config = Config(distributional=True, algo="double", atoms=11, v_min=-2.0, v_max=2.0, gamma=0.5)
    net = build_q_network(CARTPOLE, gym.spaces.Discrete(2), **network_kwargs(config))
    assert isinstance(net, DistributionalQNetwork)
    learner = Learner(net, config, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    batch = Batch(
        obs=rng.standard_normal((8, 4)).astype(np.float32),
        actions=rng.integers(0, 2, 8),
        rewards=rng.standard_normal(8).astype(np.float32),
        next_obs=rng.standard_normal((8, 4)).astype(np.float32),
        terminated=(rng.random(8) < 0.3).astype(np.float32),
        indices=np.arange(8),
        weights=np.linspace(0.5, 1.0, 8).astype(np.float32),
    )
    # The same quantities by hand, before the step: the double target from the online expected Q.
    with torch.no_grad():
        obs, next_obs = torch.from_numpy(batch.obs), torch.from_numpy(batch.next_obs)
        best_B = net(next_obs).argmax(dim=1)
        next_BZ = learner.target.log_probs(next_obs).exp()[torch.arange(8), best_B]  # type: ignore[operator]
        m_BZ = categorical_projection(
            torch.from_numpy(batch.rewards), torch.from_numpy(batch.terminated), next_BZ, net.support_Z, 0.5
        )
        ce_B = -(m_BZ * net.log_probs(obs)[torch.arange(8), torch.from_numpy(batch.actions)]).sum(dim=1)
    update = learner.update(batch, epsilon=0.0, lr=1e-3)
    torch.testing.assert_close(update.td_abs_B, ce_B)
    torch.testing.assert_close(update.loss, (torch.from_numpy(batch.weights) * ce_B).mean())


RUN = {
    "env_id": "CartPole-v1",
    "total_steps": 600,
    "learning_starts": 100,
    "batch_size": 16,
    "hidden_sizes": (16,),
    "train_frequency": 1,
    "eval_episodes": 1,
    "checkpoint_every": 300,
    "keep_checkpoints": 3,
    "log_interval": 100,
    "progress": False,
    "tensorboard": False,
    "distributional": True,
    "atoms": 11,
    "v_min": 0.0,
    "v_max": 50.0,
    "noisy": True,
    "prioritized": True,
    "n_step": 3,
    "epsilon_end": 0.0,
    "epsilon_decay_steps": 300,
}


@pytest.fixture(scope="module")
def rainbow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("rainbow") / "run"
    train(run_dir=run_dir, **RUN)  # type: ignore[arg-type]
    return run_dir


def test_rainbow_run_checkpoints_noise_and_takes_loss_priorities(rainbow_run: Path) -> None:
    ckpt = load_checkpoint(list_checkpoints(rainbow_run)[0])
    learner = ckpt.states["learner"]
    assert "noise_generator" in learner and "online.head.advantage.noise_in_I" in learner
    assert "online.support_Z" in learner
    replay = ckpt.states["replay"]
    priorities = replay["priorities"][: int(replay["storage/pos_size_capacity"][1])]
    assert (priorities > 0).all() and len(np.unique(priorities)) > 100  # (cross-entropy + eps)^alpha


def test_rainbow_resume_equals_the_uninterrupted_run(rainbow_run: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "run"
    shutil.copytree(rainbow_run, resumed)
    shutil.rmtree(list_checkpoints(resumed)[0])  # back to the checkpoint at step 300
    assert load_checkpoint(list_checkpoints(resumed)[0]).step == 300
    train(resume=resumed, progress=False, tensorboard=False)
    a, b = load_file(resumed / "model.safetensors"), load_file(rainbow_run / "model.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[name], b[name]) for name in b)
    end_a, end_b = (load_checkpoint(list_checkpoints(d)[0]) for d in (resumed, rainbow_run))
    for name, value in end_b.states["learner"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(end_a.states["learner"][name], value), name
    assert end_a.states["learner"]["noise_generator"].equal(end_b.states["learner"]["noise_generator"])
    for name, value in end_b.states["replay"].items():
        np.testing.assert_array_equal(end_a.states["replay"][name], value, err_msg=name)


def test_agent_loads_a_rainbow_model_and_acts_by_expected_q_with_mean_weights(rainbow_run: Path) -> None:
    agent = Agent.load(rainbow_run)
    assert isinstance(agent.q_net, DistributionalQNetwork) and not agent.q_net.training
    obs_BD = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    with torch.no_grad():
        q_BA = agent.q_net(torch.from_numpy(obs_BD))
        # Mean weights: new noise does not change what the agent does.
        reset_noise(agent.q_net, torch.Generator().manual_seed(1))
        torch.testing.assert_close(agent.q_net(torch.from_numpy(obs_BD)), q_BA)
    actions, _ = agent.predict(obs_BD)
    np.testing.assert_array_equal(actions, q_BA.argmax(dim=1).numpy())


def test_apex_runner_of_a_distributional_learner_leaves_priorities_to_the_shard() -> None:
    config = Config(
        distributional=True,
        noisy=True,
        prioritized=True,
        num_env_runners=1,
        n_step=3,
        buffer_size=1_000,
        v_min=0.0,
        v_max=50.0,
    )
    runner = EnvRunner(config, index=0, num_runners=1)
    assert isinstance(runner.q_net, DistributionalQNetwork) and runner.actor.noise is not None
    chunk = runner.collect(30)
    assert (chunk.td_abs_TK == 0).all()
    shard = ReplayShard(config, index=0, obs_shape=(4,), obs_dtype=np.float32)
    shard.add_chunk(chunk)
    assert isinstance(shard.replay, PrioritizedReplay)
    priorities = shard.replay.state_dict()["priorities"][: len(shard)]
    assert len(shard) == chunk.valid_TK.sum() > 0
    assert (priorities == priorities.max()).all() and priorities.max() > 0  # all at the max priority


def test_presets_resolve() -> None:
    for name in ("rainbow", "atari100k-der", "cartpole-rainbow"):
        config = resolve_config(preset=name)
        assert config.distributional and config.noisy and config.prioritized and config.n_step > 1
