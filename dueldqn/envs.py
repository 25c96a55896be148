"""Environments: gymnasium vector envs for training, a single env for evaluation.

Training envs use gymnasium 1.x's default next-step autoreset: after an episode ends, the next
``step`` of that env only resets it (its action is ignored, reward 0). The training loop marks
that step invalid so it is never stored as a transition. ``RecordEpisodeStatistics`` inside
each env reports each finished episode's return and length in ``infos["episode"]``.
"""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np


def _is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` naming close matches if ``env_id`` is not a registered environment."""
    if _is_atari(env_id):
        from dueldqn.atari import is_atari_id

        if is_atari_id(env_id):
            return
    elif env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown environment id {env_id!r}: expected a registered gymnasium id such as 'CartPole-v1'{hint}"
    )


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise ``ValueError`` unless actions are Discrete and observations a Box (what a Q-network needs)."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(
            f"{env_id} has action space {action_space}; Q-learning needs a Discrete action space "
            "(one Q-value per action). Continuous control needs an actor-critic method (SAC, TD3)."
        )
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"{env_id} has observation space {observation_space}; expected a Box (an array)")


def make_vec_env(env_id: str, num_envs: int, seed: int, backend: str = "gymnasium") -> gym.vector.VectorEnv:
    """Training envs: ``num_envs`` copies of ``env_id`` stepped together, seeded ``seed + i``.

    Atari ids (``ALE/...``) get the standard DQN preprocessing (:mod:`dueldqn.atari`).
    """
    check_env_id(env_id)
    if _is_atari(env_id):
        from dueldqn.atari import make_atari_vec_env

        envs = make_atari_vec_env(env_id, num_envs=num_envs, seed=seed, backend=backend)
    else:
        if backend != "gymnasium":
            raise ValueError(f"backend {backend!r} is only for Atari ids (ALE/...); use backend 'gymnasium'")
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(env_id)) for _ in range(num_envs)]
        )
    check_spaces(env_id, envs.single_observation_space, envs.single_action_space)
    envs.single_action_space.seed(seed)
    return envs


def make_eval_env(env_id: str, seed: int, render_mode: str | None = None) -> gym.Env:
    """One env for evaluation: full episodes, unclipped rewards (Atari: full game, no life-loss terminal)."""
    check_env_id(env_id)
    env: gym.Env
    if _is_atari(env_id):
        from dueldqn.atari import make_atari_env

        env = make_atari_env(env_id, seed=seed, training=False, render_mode=render_mode)
    else:
        env = gym.make(env_id, render_mode=render_mode)
    check_spaces(env_id, env.observation_space, env.action_space)
    env.action_space.seed(seed)
    return env


def obs_spec(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one observation of a Box space."""
    assert isinstance(space, gym.spaces.Box)
    return tuple(space.shape), np.dtype(space.dtype)
