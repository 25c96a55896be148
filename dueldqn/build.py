"""One builder: a run's components from its :class:`~dueldqn.config.Config`, for every executor.

The local loop (:mod:`dueldqn.training`), Ape-X's learner (:mod:`dueldqn.executors.apex`), its env
runners and its replay shards all build here, so a config field that changes a component is read in
one place:

- :class:`EnvSpec`: what the envs tell the builder (the network's input, the env's own observations, the actions);
- :func:`build_network`: the Q-network, seeded, on its device (NHWC weights for a conv net);
- :func:`build_learner`: the :class:`~dueldqn.learner.Learner` (online and target networks, AdamW);
- :func:`build_storage`, :func:`build_replay`: the ring or Atari's frame replay, optionally prioritized;
- :func:`build_actor`: the :class:`~dueldqn.actor.Actor`, epsilon-greedy with draws a function of (seed, step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dueldqn.actor import Actor
from dueldqn.agent import head_spec, network_kwargs, network_spec
from dueldqn.config import Config
from dueldqn.envs import raw_observation_space, stacks_frames
from dueldqn.exploration import ExplorationDraws
from dueldqn.learner import Learner
from dueldqn.networks import build_q_network
from dueldqn.replay import FrameReplayBuffer, PrioritizedReplay, Replay, ReplayBuffer


@dataclass(frozen=True)
class EnvSpec:
    """What a run's envs tell the builder.

    ``obs_space`` is the network's input (encoded by :mod:`dueldqn.spaces` where needed), ``raw_space``
    the env's own observations (what an :class:`~dueldqn.agent.Agent` takes)."""

    obs_space: gym.spaces.Box
    raw_space: gym.Space
    action_space: gym.spaces.Discrete
    frames: bool  # Atari's stacks of consecutive frames (the frame replay), not any image

    @classmethod
    def of(cls, envs: gym.vector.VectorEnv, env_id: str) -> EnvSpec:
        """The spec of ``envs``, made by :func:`dueldqn.envs.make_vec_env` for ``env_id``."""
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        assert isinstance(obs_space, gym.spaces.Box) and isinstance(action_space, gym.spaces.Discrete)
        return cls(obs_space, raw_observation_space(envs), action_space, stacks_frames(env_id))

    @property
    def n_actions(self) -> int:
        return int(self.action_space.n)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.obs_space.shape)

    @property
    def obs_dtype(self) -> np.dtype:
        return np.dtype(self.obs_space.dtype)

    @property
    def conv(self) -> bool:
        """Whether the network is convolutional (an image input)."""
        return len(self.obs_shape) == 3

    def network_spec(self, config: Config) -> dict[str, Any]:
        """What the model file and checkpoints record of the network (:func:`dueldqn.agent.network_spec`)."""
        return network_spec(
            self.obs_space, self.n_actions, config.dueling, config.hidden_sizes, self.raw_space, head_spec(config)
        )


def build_network(config: Config, env: EnvSpec, device: torch.device, *, seed: int) -> torch.nn.Module:
    """The Q-network ``config`` asks for, initialised from torch's generator seeded with ``seed``, on ``device``."""
    torch.manual_seed(seed)
    q_net = build_q_network(env.obs_space, env.action_space, **network_kwargs(config)).to(device)
    if env.conv:  # oneDNN / cuDNN convolutions run faster on NHWC weights (about 10% per update on 2 cores)
        q_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return q_net


def build_learner(
    config: Config, q_net: torch.nn.Module, device: torch.device, *, noise: torch.Generator | None
) -> Learner:
    """The learner of ``q_net``: its target network, AdamW, and a generator for SARSA's ``A'`` seeded by the run."""
    generator = torch.Generator(device=device).manual_seed(config.seed)
    return Learner(q_net, config, device=device, generator=generator, noise_generator=noise)


def build_storage(
    config: Config,
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype,
    *,
    frames: bool,
    num_envs: int,
    capacity: int | None = None,
    mask_actions: int = 0,
) -> ReplayBuffer | FrameReplayBuffer:
    """The replay's storage for ``num_envs`` streams: Atari's frame replay (``frames``: each frame stored once,
    stacks rebuilt by index) or the ring; ``capacity`` defaults to ``config.buffer_size``. n-step returns are
    folded when a batch is sampled. ``mask_actions``: keep each ``s'``'s action mask of this many actions (0: the
    run uses no masks)."""
    capacity = config.buffer_size if capacity is None else capacity
    storage_type = FrameReplayBuffer if frames else ReplayBuffer
    return storage_type(
        capacity,
        obs_shape,
        obs_dtype,
        num_envs=num_envs,
        n_step=config.n_step,
        gamma=config.gamma,
        mask_actions=mask_actions,
    )


def build_replay(config: Config, storage: ReplayBuffer | FrameReplayBuffer) -> Replay:
    """The replay the loops drive: ``storage`` itself, or prioritized over it (``config.prioritized``)."""
    return PrioritizedReplay(storage, alpha=config.alpha, eps=config.priority_eps) if config.prioritized else storage


def build_actor(
    config: Config,
    q_net: torch.nn.Module,
    env: EnvSpec,
    *,
    seed: int,
    num_envs: int,
    device: torch.device,
    noise: torch.Generator | None,
) -> Actor:
    """The epsilon-greedy actor of ``num_envs`` envs; small MLPs on the CPU act through numpy (``numpy_mlp``)."""
    draws = ExplorationDraws(seed, num_envs)
    return Actor(q_net, env.n_actions, draws=draws, device=device, numpy_mlp=config.numpy_mlp, noise=noise)
