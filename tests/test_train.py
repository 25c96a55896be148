"""The training loop's parts: storing transitions over vector envs, the target network, updates."""

from __future__ import annotations

import copy
import functools
import itertools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import Config
from dueldqn.envs import BoxSyncVectorEnv
from dueldqn.executors.local import env_step
from dueldqn.executors.session import LoopState, crossed
from dueldqn.learner import Learner, gradient_step, update_target
from dueldqn.networks import build_q_network
from dueldqn.numpy_mlp import NumpyAdamW
from dueldqn.replay import Batch, ReplayBuffer
from dueldqn.training import train


class CountEnv(gym.Env):
    """obs = [episode marker, t]; reward = t + action / 10; terminates at ``terminate_at`` (if set)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, env_index: int, terminate_at: int | None) -> None:
        self.env_index, self.terminate_at = env_index, terminate_at
        self.episode, self.t = -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([100 * self.episode + self.env_index, self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = self.t + action / 10
        self.t += 1
        return self._obs(), reward, self.t == self.terminate_at, False, {}


SETUPS = [(3, 5), (None, 4), (2, 6)]  # (terminate_at, time limit) per env: env 1 is only ever truncated


def _make(i: int) -> gym.Env:
    terminate_at, limit = SETUPS[i]
    return gym.wrappers.TimeLimit(CountEnv(i, terminate_at), max_episode_steps=limit)


@pytest.mark.parametrize("vector_env", [gym.vector.SyncVectorEnv, BoxSyncVectorEnv])
def test_env_step_stores_what_a_slow_reference_loop_stores(vector_env: type[gym.vector.SyncVectorEnv]) -> None:
    n_envs, iterations = len(SETUPS), 40
    actions_TN = np.random.default_rng(0).integers(0, 2, size=(iterations, n_envs))

    envs = vector_env([functools.partial(_make, i) for i in range(n_envs)])
    replay = ReplayBuffer(1000, (2,), np.float32)
    obs, _ = envs.reset(seed=0)
    state = LoopState(obs_NO=obs, autoreset_N=np.zeros(n_envs, dtype=bool))
    for t in range(iterations):
        env_step(envs, replay, state, actions_TN[t])
    assert state.steps == iterations * n_envs and state.iteration == iterations

    # The reference: each env on its own, reset by hand; the action of a reset step is unused.
    expected: list[tuple[int, int, tuple]] = []
    for i in range(n_envs):
        env = _make(i)
        o, _ = env.reset(seed=0)
        needs_reset = False
        for t in range(iterations):
            if needs_reset:
                o, _ = env.reset()
                needs_reset = False
                continue
            o2, r, term, trunc, _ = env.step(int(actions_TN[t, i]))
            expected.append((t, i, (tuple(o), int(actions_TN[t, i]), float(np.float32(r)), tuple(o2), float(term))))
            o, needs_reset = o2, term or trunc
    expected.sort(key=lambda x: (x[0], x[1]))
    stored = [
        (
            tuple(replay.obs[k]),
            int(replay.actions[k]),
            float(replay.rewards[k]),
            tuple(replay.next_obs[k]),
            float(replay.terminated[k]),
        )
        for k in range(len(replay))
    ]
    assert stored == [e[2] for e in expected]

    # Invariants: no stored transition joins two episodes; truncations keep their real last obs.
    assert np.all(replay.next_obs[: len(replay), 0] == replay.obs[: len(replay), 0])
    assert np.all(replay.next_obs[: len(replay), 1] == replay.obs[: len(replay), 1] + 1)
    env1 = replay.obs[: len(replay), 0] % 100 == 1
    assert not replay.terminated[: len(replay)][env1].any()  # env 1 only truncates: always bootstrapped
    assert (replay.next_obs[: len(replay)][env1, 1] == 4).sum() == 8  # its 8 truncations, final obs t=4, stored


def test_box_sync_vector_env_returns_what_sync_vector_env_returns() -> None:
    def make() -> gym.Env:
        return gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1", max_episode_steps=30))

    ours, reference = BoxSyncVectorEnv([make] * 3), gym.vector.SyncVectorEnv([make] * 3)
    np.testing.assert_array_equal(ours.reset(seed=5)[0], reference.reset(seed=5)[0])
    actions_TN = np.random.default_rng(1).integers(0, 2, size=(300, 3))
    episodes = 0
    for actions_N in actions_TN:
        got, want = ours.step(actions_N), reference.step(actions_N)
        for g, w in zip(got[:4], want[:4], strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
        assert got[4].keys() == want[4].keys()
        if "episode" in want[4]:
            episodes += int(want[4]["_episode"].sum())
            for key in ("r", "l", "_r", "_l"):
                np.testing.assert_array_equal(got[4]["episode"][key], want[4]["episode"][key])
            np.testing.assert_array_equal(got[4]["_episode"], want[4]["_episode"])
    assert episodes > 20  # terminations, truncations at 30 steps and their reset steps were all compared


def _nets(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    q_net = build_q_network(space, gym.spaces.Discrete(2), hidden_sizes=(8,))
    return q_net, copy.deepcopy(q_net).requires_grad_(False)


def _batch(n: int = 16) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(
        rng.standard_normal((n, 3)).astype(np.float32),
        rng.integers(0, 2, n),
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal((n, 3)).astype(np.float32),
        (rng.random(n) < 0.2).astype(np.float32),
    )


@pytest.mark.parametrize("algo", ["dqn", "double", "sarsa", "expected-sarsa"])
def test_gradient_steps_move_the_online_net_and_never_the_target(algo: str) -> None:
    q_net, target_net = _nets()
    frozen = copy.deepcopy(target_net.state_dict())
    before = copy.deepcopy(q_net.state_dict())
    optimizer = torch.optim.AdamW(q_net.parameters(), lr=1e-2)
    config = Config(algo=algo, batch_size=16)
    for _ in range(5):
        loss, td_abs_B = gradient_step(
            q_net,
            target_net,
            optimizer,
            _batch(),
            config=config,
            epsilon=0.1,
            device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0),
        )
        assert loss.shape == () and torch.isfinite(loss) and td_abs_B.shape == (16,)
        torch.testing.assert_close(loss, (td_abs_B**2).mean())  # the MSE loss is the mean squared |TD error|
    for name, value in target_net.state_dict().items():
        torch.testing.assert_close(value, frozen[name], rtol=0, atol=0)
    assert any(not torch.equal(v, before[k]) for k, v in q_net.state_dict().items())


def test_gradient_step_matches_a_hand_written_update() -> None:
    q_net, target_net = _nets()
    reference = copy.deepcopy(q_net)
    batch = _batch()
    gradient_step(
        q_net,
        target_net,
        torch.optim.SGD(q_net.parameters(), lr=0.1),
        batch,
        config=Config(gamma=0.9),
        epsilon=0.0,
        device=torch.device("cpu"),
        generator=torch.Generator(),
    )
    with torch.no_grad():
        next_q = target_net(torch.from_numpy(batch.next_obs)).max(dim=1).values
        y = torch.from_numpy(batch.rewards) + 0.9 * (1 - torch.from_numpy(batch.terminated)) * next_q
    q_sa = reference(torch.from_numpy(batch.obs))[torch.arange(16), torch.from_numpy(batch.actions)]
    ((q_sa - y) ** 2).mean().backward()
    with torch.no_grad():
        for p in reference.parameters():
            assert p.grad is not None
            p -= 0.1 * p.grad  # type: ignore[misc]  # torch's stub: -= gives a Tensor, not the Parameter it stays
    for a, b in zip(q_net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_hard_sync_copies_exactly_and_polyak_mixes() -> None:
    q_net, target_net = _nets()
    with torch.no_grad():
        for p in q_net.parameters():
            p.add_(1.0)
    old = [p.clone() for p in target_net.parameters()]
    update_target(target_net, q_net, tau=0.25)
    for t, o, q in zip(target_net.parameters(), old, q_net.parameters(), strict=True):
        torch.testing.assert_close(t, 0.25 * q + 0.75 * o)
    update_target(target_net, q_net)
    for t, q in zip(target_net.parameters(), q_net.parameters(), strict=True):
        assert torch.equal(t, q)
    assert not any(p.requires_grad for p in target_net.parameters())


def test_step_sync_fires_once_per_interval_for_any_number_of_envs() -> None:
    for num_envs in (1, 3, 4, 7):
        steps = range(num_envs, 2000 + 1, num_envs)
        fired = [s for s in steps if crossed(s, num_envs, 500)]
        assert len(fired) == steps[-1] // 500  # one sync per multiple of 500 passed
        assert all(s - num_envs < 500 * (k + 1) <= s for k, s in enumerate(fired))


def _checkpointed_run(tmp_path: Path, **changes: Any) -> list[tuple[int, int, dict, dict]]:
    """(step, episodes, online, target) at every 50 steps of a short CartPole run."""
    config = Config(
        total_steps=600,
        learning_starts=50,
        batch_size=16,
        hidden_sizes=(16,),
        train_frequency=1,
        checkpoint_every=50,
        keep_checkpoints=100,
        eval_episodes=1,
        **changes,
    )
    train(config, run_dir=tmp_path / "run", progress=False, tensorboard=False)
    out = []
    for path in reversed(list_checkpoints(tmp_path / "run")):
        ckpt = load_checkpoint(path)
        nets = {
            kind: {k[len(kind) + 1 :]: v for k, v in ckpt.states["learner"].items() if k.startswith(kind + ".")}
            for kind in ("online", "target")
        }
        out.append((ckpt.step, ckpt.states["loop"]["episodes"], nets["online"], nets["target"]))
    return out


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_target_follows_each_sync_mode_in_a_real_run(tmp_path: Path) -> None:
    steps = _checkpointed_run(tmp_path / "steps", target_sync="steps", target_sync_every=200)
    assert [s for s, *_ in steps] == list(range(50, 601, 50))
    for (_, _, _, before), (step, _, online, target) in itertools.pairwise(steps):
        if step % 200 == 0:
            assert _same(target, online)  # synced on this step, after its update
        else:
            assert _same(target, before) and not _same(target, online)  # frozen between syncs

    episodes = _checkpointed_run(tmp_path / "episodes", target_sync="episodes", target_sync_every=3)
    changes = 0
    for (_, done_before, _, before), (_, done, _, target) in itertools.pairwise(episodes):
        if done // 3 == done_before // 3:
            assert _same(target, before)  # no third episode ended: frozen
        else:
            changes += 1
            assert not _same(target, before)
    assert changes >= 3

    polyak = _checkpointed_run(tmp_path / "polyak", target_sync="polyak", tau=0.1)
    for (_, _, _, before), (_, _, online, target) in itertools.pairwise(polyak):
        assert not _same(target, before) and not _same(target, online)  # moves a little every update


@pytest.mark.parametrize("numpy_mlp", [True, False])
def test_the_learner_steps_both_paths_alike_and_syncs_its_target(numpy_mlp: bool) -> None:
    runs = {}
    for path in (numpy_mlp, not numpy_mlp):
        q_net, _ = _nets()
        learner = Learner(
            q_net,
            Config(batch_size=16, numpy_mlp=path),
            device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0),
        )
        assert isinstance(learner.optimizer, NumpyAdamW) == path  # no torch optimizer on the numpy path
        frozen = copy.deepcopy(learner.target.state_dict())
        for _ in range(5):
            update = learner.update(_batch(), epsilon=0.1, lr=1e-2)
            assert update.td_abs_B.shape == (16,) and torch.isfinite(update.loss)
        assert all(torch.equal(v, frozen[k]) for k, v in learner.target.state_dict().items())
        assert learner.optimizer.param_groups[0]["lr"] == 1e-2
        learner.sync_target()
        assert all(torch.equal(v, learner.online.state_dict()[k]) for k, v in learner.target.state_dict().items())
        runs[path] = learner.online.state_dict()
    for name, value in runs[True].items():  # the numpy and torch updates: the same maths
        torch.testing.assert_close(value, runs[False][name], rtol=1e-4, atol=1e-5)
