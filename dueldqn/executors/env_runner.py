"""Ape-X's env runner: its own envs, network copy and epsilons; it collects chunks of experience.

An :class:`EnvRunner` is plain Python (no Ray import): :mod:`dueldqn.executors.ray_apex` wraps it
in an actor, and the tests run it in-process. Runner ``r`` of ``R`` steps ``K`` envs; env ``k``
of it is env ``i = r K + k`` of all ``N = R K`` and explores with Ape-X's fixed rate

    eps_i = base ** (1 + alpha i / (N - 1))     base 0.4, alpha 7 (Horgan et al., 2018)

(``apex_epsilon_base`` and ``apex_epsilon_alpha`` of the config; the paper's values by default).

It acts with a copy of the learner's online network that it replaces when a newer
:class:`~dueldqn.tensors.Weights` arrives, and sends the replay raw one-step rows in stream order
(one :class:`Chunk` of ``T`` vector steps at a time): the replay shard folds n-step returns at
sampling time from its per-env stream links, exactly as in the local loop, so nothing is folded
twice and ``n_step`` stays a setting of the sampler. Each row also carries the runner's initial
``|delta|`` (:func:`initial_td_errors`), so a new transition enters the prioritized replay with
its own priority rather than the maximum. A distributional learner's priorities are cross-entropies, which
no runner can estimate without the target network: its rows carry none and enter with the maximum, as in
Rainbow (:func:`actor_priorities`). A noisy runner draws new noise each act step from its own generator.
With action masks (:mod:`dueldqn.envs.masks`) a runner acts over the legal actions and its chunk carries
each row's ``s'`` mask, which the shard stores beside the transition.

Shape suffixes: ``T`` vector steps of a chunk, ``K`` envs of the runner, ``O`` observation, ``A`` actions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dueldqn.agent import noise_generator
from dueldqn.build import EnvSpec, build_actor, build_network
from dueldqn.config import Config
from dueldqn.envs import make_vec_env
from dueldqn.envs.masks import run_masks
from dueldqn.exploration import annealed_apex_epsilons, apex_epsilons, legal_rows
from dueldqn.seeds import runner_seed
from dueldqn.tensors import Weights


class Chunk(NamedTuple):
    """``T`` consecutive vector steps of one runner's ``K`` envs: raw one-step rows, in stream order."""

    runner: int  # the runner's index r
    incarnation: int  # 0 for the first life of the runner, another number after each restart
    seq: int  # chunks sent before this one in this incarnation
    obs_TKO: np.ndarray
    actions_TK: np.ndarray  # int64
    rewards_TK: np.ndarray  # float32
    next_obs_TKO: np.ndarray  # the real next observation, also after a truncation
    terminated_TK: np.ndarray  # bool
    truncated_TK: np.ndarray  # bool
    valid_TK: np.ndarray  # bool: False on the step that only resets an env (next-step autoreset): not stored
    td_abs_TK: np.ndarray  # float64 initial |delta| (0 where not valid)
    ids_TK: np.ndarray  # int64 transition ids, vector step * K + env: unique within the runner's life
    episodes: list[tuple[int, float, int]]  # (env k, return, length) of episodes finished in the chunk
    weights_version: int  # the version of the weights that acted (-1: the initial random network)
    next_mask_TKA: np.ndarray | None = None  # bool: the legal actions of each next_obs (None: no masks)

    @property
    def transitions(self) -> int:
        """Rows the replay stores from this chunk (the valid ones)."""
        return int(self.valid_TK.sum())


class FrameChunk(NamedTuple):
    """A :class:`Chunk` of stacked frames (Atari) as it travels to its shard: each frame sent once.

    A valid row's ``s'`` is its ``s`` shifted by one frame, and a step's ``s`` is the step before's
    ``s'``: so the stacks the chunk starts from, the newest frame of every step and the full ``s'``
    of the steps that only reset an env (the new episode's first stack) give back every stack.
    About ``1 / (2 F)`` of the chunk's bytes for ``F`` stacked frames (8x less for Atari's 4).
    """

    chunk: Chunk  # obs_TKO and next_obs_TKO left out (empty arrays)
    first_obs_KO: np.ndarray  # the stacks the chunk starts from
    frames_TK: np.ndarray  # (T, K, *frame): next_obs_TKO[:, :, -1], the newest frame of each step
    resets_RO: np.ndarray  # (R, *O): the next_obs of the R rows that are not valid (T-major order)


def pack_frames(chunk: Chunk) -> FrameChunk | Chunk:
    """The chunk with each frame once (:class:`FrameChunk`); the chunk itself if its stacks do not chain so."""
    obs_TKO, next_obs_TKO, valid_TK = chunk.obs_TKO, chunk.next_obs_TKO, chunk.valid_TK
    if obs_TKO.ndim < 4:  # a vector observation: no frames
        return chunk
    chained = np.array_equal(obs_TKO[1:], next_obs_TKO[:-1]) and np.array_equal(
        obs_TKO[valid_TK][:, 1:], next_obs_TKO[valid_TK][:, :-1]
    )
    if not chained:
        return chunk
    empty = np.empty((0,), dtype=obs_TKO.dtype)
    return FrameChunk(
        chunk._replace(obs_TKO=empty, next_obs_TKO=empty),
        obs_TKO[0].copy(),
        np.ascontiguousarray(next_obs_TKO[:, :, -1]),
        next_obs_TKO[~valid_TK],
    )


def unpack_frames(packed: FrameChunk | Chunk) -> Chunk:
    """The :class:`Chunk` that :func:`pack_frames` packed (a plain chunk passes through)."""
    if isinstance(packed, Chunk):
        return packed
    chunk, valid_TK = packed.chunk, packed.chunk.valid_TK
    T = len(valid_TK)
    obs_TKO = np.empty((T, *packed.first_obs_KO.shape), dtype=packed.first_obs_KO.dtype)
    next_obs_TKO = np.empty_like(obs_TKO)
    obs_TKO[0] = packed.first_obs_KO
    resets = 0
    for t in range(T):
        next_obs_TKO[t, :, :-1] = obs_TKO[t, :, 1:]  # s' = s shifted by one frame, then the new frame
        next_obs_TKO[t, :, -1] = packed.frames_TK[t]
        reset_k = np.flatnonzero(~valid_TK[t])
        next_obs_TKO[t, reset_k] = packed.resets_RO[resets : resets + len(reset_k)]
        resets += len(reset_k)
        if t + 1 < T:
            obs_TKO[t + 1] = next_obs_TKO[t]
    return chunk._replace(obs_TKO=obs_TKO, next_obs_TKO=next_obs_TKO)


def initial_td_errors(
    q_obs_TKA: np.ndarray,
    q_next_TKA: np.ndarray,
    actions_TK: np.ndarray,
    rewards_TK: np.ndarray,
    terminated_TK: np.ndarray,
    ended_TK: np.ndarray,
    valid_TK: np.ndarray,
    *,
    n_step: int,
    gamma: float,
    next_mask_TKA: np.ndarray | None = None,
) -> np.ndarray:
    """Ape-X's actor-side priorities ``|G - Q(s_t, a_t)|``, ``(T, K)`` float64 (0 where not valid).

    With ``next_mask_TKA`` (action masks) the max ranges over the legal actions of ``s_{t+k}``.

    ``G = sum_{j<k} gamma^j r_{t+j} + gamma^k (1 - terminated_{t+k-1}) max_a Q(s_{t+k}, a)`` over a
    window of ``k <= n`` steps of the same env that stops at the episode's end or at the chunk's
    end (the runner does not wait for the next chunk: the last ``n - 1`` rows of a chunk get a
    shorter window; the learner's first update of a row replaces the estimate anyway). Both Q's
    come from the runner's copy of the online network, as in Ape-X (no target network there).
    """
    T, K = actions_TK.shape
    return_TK = np.zeros((T, K))
    discount_TK = np.ones((T, K))
    last_TK = np.tile(np.arange(T)[:, None], (1, K))  # the step whose s' the window bootstraps from
    open_TK = valid_TK.copy()  # windows still taking rewards
    for j in range(n_step):
        t_T = np.arange(T) + j
        inside_T = t_T < T
        take_TK = open_TK & inside_T[:, None]
        src_T = np.minimum(t_T, T - 1)
        take_TK &= valid_TK[src_T]
        return_TK += np.where(take_TK, discount_TK * rewards_TK[src_T], 0.0)
        discount_TK = np.where(take_TK, discount_TK * gamma, discount_TK)
        last_TK = np.where(take_TK, src_T[:, None], last_TK)
        open_TK = take_TK & ~ended_TK[src_T]
    env_K = np.arange(K)
    if next_mask_TKA is not None:  # illegal actions out of the max (a terminal s' with none: all, masked below)
        q_next_TKA = np.where(legal_rows(next_mask_TKA), q_next_TKA, -np.inf)
    bootstrap_TK = q_next_TKA[last_TK, env_K].max(axis=-1) * (1.0 - terminated_TK[last_TK, env_K])
    q_sa_TK = np.take_along_axis(q_obs_TKA, actions_TK[..., None], axis=-1)[..., 0]
    td_TK = np.abs(return_TK + discount_TK * bootstrap_TK - q_sa_TK)
    return np.where(valid_TK, td_TK, 0.0)


def actor_priorities(config: Config) -> bool:
    """Whether runners send initial priorities: prioritized replay of TD errors (a distributional learner's
    cross-entropy priorities have another scale: its new rows take the shard's maximum priority instead)."""
    return config.prioritized and not config.distributional


class EnvRunner:
    """Runner ``index`` of ``num_runners``: ``config.envs_per_runner`` envs, a network copy and an Actor.

    Args:
        config: the run's config (env, network, n-step, gamma, Ape-X epsilon settings).
        index: this runner's index ``r`` (its envs are ``r K ... r K + K - 1`` of all envs).
        num_runners: ``R``, for the epsilons over all ``R K`` envs.
        incarnation: 0 for a first start; a restarted runner gets another number (fresh envs,
            draws and transition ids, so nothing it sends repeats what its earlier life sent).
    """

    def __init__(self, config: Config, *, index: int, num_runners: int, incarnation: int = 0) -> None:
        self.config, self.index, self.incarnation = config, index, incarnation
        # One thread (a process-wide setting): an MLP acts fastest so, and a conv net acting on K observations
        # gains little from more, while runners, shards and the learner share the machine's cores.
        threadpool_limits(limits=1, user_api="blas")
        torch.set_num_threads(1)
        K = self.num_envs = config.envs_per_runner
        seed = runner_seed(config.seed, index, incarnation)
        self.envs = make_vec_env(config.env_id, K, seed, config.backend)
        env, cpu = EnvSpec.of(self.envs, config.env_id), torch.device("cpu")
        # The first weights are the learner's anyway; the seed only fixes the placeholder.
        self.q_net = build_network(config, env, cpu, seed=seed)
        self.n_actions = env.n_actions
        noise = noise_generator(config, cpu, 1, seed)
        self.actor = build_actor(config, self.q_net, env, seed=seed, num_envs=K, device=cpu, noise=noise)
        rates = apex_epsilons(num_runners * K, config.apex_epsilon_base, config.apex_epsilon_alpha)
        self.epsilons_K = rates[index * K : (index + 1) * K]
        self.obs_KO, infos = self.envs.reset(seed=seed)
        self.masks = run_masks(config.action_mask, config.env_id, self.envs, infos)
        self.mask_KA = None if self.masks is None else self.masks.read(self.envs, infos, 0)  # legal in obs_KO
        self.autoreset_K = np.zeros(K, dtype=bool)
        self.episode_return_K = np.zeros(K)
        self.episode_length_K = np.zeros(K, dtype=np.int64)
        self.iteration = 0  # vector steps taken in this life
        self.seq = 0  # chunks made in this life
        self.version = -1  # weights version acting (-1: not yet any of the learner's)
        self.steps_since_sync = 0

    def wants_weights(self, version: int) -> bool:
        """Whether to load weights of ``version``: newer, and ``runner_sync_steps`` env steps since the last load."""
        newer = version > self.version
        return newer and (self.version < 0 or self.steps_since_sync >= self.config.runner_sync_steps)

    def set_weights(self, weights: Weights) -> None:
        """Act with ``weights`` from now on."""
        self.actor.set_weights(weights)
        self.version = weights.version
        self.steps_since_sync = 0

    def collect(self, num_steps: int, run_step: int | None = None) -> Chunk:
        """Step the envs ``num_steps`` times with the behaviour policy and return what happened.

        ``run_step``: the run's env steps when the chunk was asked for; the envs' rates are then
        annealed from ``epsilon_start`` to their Ape-X rates by the config's schedule
        (:func:`annealed_apex_epsilons`). None: the Ape-X rates.
        """
        T, K, obs = num_steps, self.num_envs, self.obs_KO
        epsilons_K = self.epsilons_K
        if run_step is not None:
            c = self.config
            epsilons_K = annealed_apex_epsilons(
                run_step - c.epsilon_decay_start, epsilons_K, c.epsilon_schedule, c.epsilon_start, c.epsilon_decay_steps
            )
        obs_TKO = np.empty((T, *obs.shape), dtype=obs.dtype)
        next_obs_TKO = np.empty_like(obs_TKO)
        actions_TK = np.empty((T, K), dtype=np.int64)
        rewards_TK = np.empty((T, K), dtype=np.float32)
        terminated_TK = np.empty((T, K), dtype=bool)
        truncated_TK = np.empty((T, K), dtype=bool)
        valid_TK = np.empty((T, K), dtype=bool)
        next_mask_TKA = None if self.masks is None else np.empty((T, K, self.n_actions), dtype=bool)
        episodes: list[tuple[int, float, int]] = []
        first_iteration = self.iteration
        for t in range(T):
            actions_K = self.actor.act(self.obs_KO, epsilons_K, self.iteration, self.mask_KA)
            next_obs_KO, rewards_K, terminated_K, truncated_K, infos = self.envs.step(actions_K)
            if self.masks is not None and next_mask_TKA is not None:  # the legal actions of next_obs_KO
                self.mask_KA = next_mask_TKA[t] = self.masks.read(self.envs, infos, self.iteration * K, terminated_K)
            obs_TKO[t], next_obs_TKO[t], actions_TK[t], rewards_TK[t] = self.obs_KO, next_obs_KO, actions_K, rewards_K
            terminated_TK[t], truncated_TK[t], valid_TK[t] = terminated_K, truncated_K, ~self.autoreset_K
            # Episode statistics from the rows themselves (the env's own episode wrapper may be absent).
            self.episode_return_K += np.where(self.autoreset_K, 0.0, rewards_K)
            self.episode_length_K += ~self.autoreset_K
            self.autoreset_K = terminated_K | truncated_K
            for k in np.flatnonzero(self.autoreset_K):
                episodes.append((int(k), float(self.episode_return_K[k]), int(self.episode_length_K[k])))
                self.episode_return_K[k], self.episode_length_K[k] = 0.0, 0
            self.obs_KO = next_obs_KO
            self.iteration += 1
        self.steps_since_sync += T * K
        td_abs_TK = self._initial_td_errors(
            obs_TKO, actions_TK, rewards_TK, next_obs_TKO, terminated_TK, truncated_TK, valid_TK, next_mask_TKA
        )
        ids_TK = (np.arange(first_iteration, self.iteration)[:, None] * K + np.arange(K)).astype(np.int64)
        chunk = Chunk(
            self.index,
            self.incarnation,
            self.seq,
            obs_TKO,
            actions_TK,
            rewards_TK,
            next_obs_TKO,
            terminated_TK,
            truncated_TK,
            valid_TK,
            td_abs_TK,
            ids_TK,
            episodes,
            self.version,
            next_mask_TKA,
        )
        self.seq += 1
        return chunk

    def _initial_td_errors(
        self,
        obs_TKO: np.ndarray,
        actions_TK: np.ndarray,
        rewards_TK: np.ndarray,
        next_obs_TKO: np.ndarray,
        terminated_TK: np.ndarray,
        truncated_TK: np.ndarray,
        valid_TK: np.ndarray,
        next_mask_TKA: np.ndarray | None = None,
    ) -> np.ndarray:
        if not actor_priorities(self.config):
            return np.zeros(actions_TK.shape)
        T, K = actions_TK.shape
        q_obs_TKA = self.actor.q_values(obs_TKO.reshape(T * K, *obs_TKO.shape[2:])).reshape(T, K, -1)
        q_next_TKA = self.actor.q_values(next_obs_TKO.reshape(T * K, *obs_TKO.shape[2:])).reshape(T, K, -1)
        return initial_td_errors(
            q_obs_TKA,
            q_next_TKA,
            actions_TK,
            rewards_TK,
            terminated_TK.astype(np.float64),
            terminated_TK | truncated_TK,
            valid_TK,
            n_step=self.config.n_step,
            gamma=self.config.gamma,
            next_mask_TKA=next_mask_TKA,
        )

    def stats(self) -> dict[str, Any]:
        """What the driver wants to know about this runner (its epsilons, version, life)."""
        return {
            "runner": self.index,
            "incarnation": self.incarnation,
            "epsilons": self.epsilons_K.tolist(),
            "version": self.version,
            "iteration": self.iteration,
        }

    def close(self) -> None:
        """Close the envs."""
        self.envs.close()
