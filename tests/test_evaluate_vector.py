"""Batched evaluation over N envs: fixed quotas, every episode counted once, the same returns as one env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from dueldqn.evaluate import episode_quotas, evaluate, evaluate_vector


class ScriptedEnv(gym.Env[np.ndarray, np.int64]):
    """Episode ``k`` lasts ``lengths[k % len(lengths)]`` steps; each step pays ``action + 1``.

    Observations are ``[env id, step in episode]``. The last episode of the script ends by
    truncation, the others by termination. It counts its steps and remembers the seeds it got.
    """

    def __init__(self, env_id: int, lengths: list[int]) -> None:
        self.env_id, self.lengths = env_id, lengths
        self.observation_space = gym.spaces.Box(0, 1_000, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.episode, self.t, self.steps, self.seeds = -1, 0, 0, []  # type: ignore[var-annotated]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self.seeds.append(seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([self.env_id, 0], np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        self.steps += 1
        k = self.episode % len(self.lengths)
        end = self.t == self.lengths[k]
        last = k == len(self.lengths) - 1
        return np.array([self.env_id, self.t], np.float32), float(action + 1), end and not last, end and last, {}


def test_episode_quotas_split_the_episodes_as_evenly_as_possible() -> None:
    assert episode_quotas(10, 4) == [3, 3, 2, 2]
    assert episode_quotas(3, 5) == [1, 1, 1, 0, 0]
    assert episode_quotas(100, 16) == [7] * 4 + [6] * 12 and sum(episode_quotas(100, 16)) == 100
    with pytest.raises(ValueError, match="must be positive"):
        episode_quotas(0, 4)


def test_each_env_plays_its_quota_and_no_step_more() -> None:
    envs = [ScriptedEnv(0, [5, 1]), ScriptedEnv(1, [2]), ScriptedEnv(2, [30])]
    batch_sizes: list[int] = []

    def act_batch(obs_B: np.ndarray) -> np.ndarray:
        batch_sizes.append(len(obs_B))
        return (obs_B[:, 0] == 1).astype(np.int64)  # env 1 plays action 1 (reward 2), the others action 0

    result = evaluate_vector(envs, act_batch, episodes=7, seed=100)
    # quotas 3, 2, 2: env 0 plays lengths 5, 1, 5; env 1 plays 2, 2; env 2 plays 30, 30
    assert result.lengths == [5, 1, 5, 2, 2, 30, 30]
    assert result.returns == [5.0, 1.0, 5.0, 4.0, 4.0, 30.0, 30.0]
    assert [env.steps for env in envs] == [11, 4, 60]  # a finished env is not stepped again
    assert [env.seeds[0] for env in envs] == [100, 101, 102] and all(s is None for e in envs for s in e.seeds[1:])
    assert batch_sizes[:4] == [3, 3, 3, 3] and batch_sizes[-1] == 1 and len(batch_sizes) == 60


def test_batched_evaluation_equals_one_env_at_a_time() -> None:
    """The vectorised loop against the slow reference, env by env, with a policy that depends on the observation."""

    def policy(obs: np.ndarray) -> int:
        return int(obs[1]) % 3

    lengths = [[3, 8, 4], [7], [2, 9]]
    batched = evaluate_vector(
        gym.vector.SyncVectorEnv([lambda ls=ls, i=i: ScriptedEnv(i, ls) for i, ls in enumerate(lengths)]),  # type: ignore[misc]
        lambda obs_B: np.array([policy(o) for o in obs_B]),
        episodes=8,
        seed=0,
    )
    one_by_one: list[float] = []
    for i, (ls, quota) in enumerate(zip(lengths, episode_quotas(8, 3), strict=True)):
        one_by_one += evaluate(ScriptedEnv(i, ls), policy, episodes=quota, seed=i).returns
    assert batched.returns == one_by_one
    assert batched.mean == pytest.approx(np.mean(one_by_one))


def test_a_wrong_batch_of_actions_is_refused() -> None:
    with pytest.raises(ValueError, match=r"act_batch returned shape \(1,\), expected \(2,\)"):
        envs = [ScriptedEnv(0, [3]), ScriptedEnv(1, [3])]
        evaluate_vector(envs, lambda obs_B: np.zeros(1, np.int64), episodes=2, seed=0)
