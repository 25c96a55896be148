"""The local executor: the lecture's algorithm box in one process, over ``N`` vectorised envs::

    A_t ~ b(S_t)                     epsilon-greedy w.r.t. Q                          (act)
    S_t+1, R_t+1 <- env(A_t)                                                          (step)
    B <- B + (S_t, A_t, R_t+1, S_t+1, terminated)                                     (store)
    K ~ B                            uniformly, or in proportion to priorities        (sample)
    theta <- theta - alpha grad 1/|K| sum w_i l(y_i - Q(S_i, A_i | theta))           (update)
    every k episodes / N steps / each update (Polyak): theta_targ <- theta            (sync)
    every eval_every steps: evaluate; stop once the mean return reaches stop_return    (evaluate)
    every log_interval steps: a metrics row; every checkpoint_every: a checkpoint      (log)

The components (:class:`~dueldqn.actor.Actor`, :class:`~dueldqn.learner.Learner`, the replay) and
the :class:`~dueldqn.executors.session.Session` do the work; this loop only says when. It calls
them and they never call it: no hooks, no callbacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from dueldqn.actor import Actor
from dueldqn.config import Config
from dueldqn.envs.masks import VectorMasks
from dueldqn.evaluate import TrainingEvaluation
from dueldqn.executors.cadence import TargetSync
from dueldqn.executors.session import LoopState, Session
from dueldqn.exploration import epsilon_at, linear_schedule
from dueldqn.learner import Learner
from dueldqn.replay import Replay
from dueldqn.threads import ThreadPolicy


class Parts(NamedTuple):
    """The components the loop drives, and what it needs to drive them."""

    config: Config
    actor: Actor
    learner: Learner
    replay: Replay
    rng: np.random.Generator  # replay sampling
    device: torch.device
    evaluation: TrainingEvaluation | None = None  # evaluations during training (eval_every)
    threads: ThreadPolicy | None = None  # torch's thread count, re-chosen between updates when auto
    masks: VectorMasks | None = None  # the envs' action masks, when the run uses them


def env_step(
    envs: gym.vector.VectorEnv,
    replay: Replay,
    state: LoopState,
    actions_N: np.ndarray,
    masks: VectorMasks | None = None,
) -> dict[str, Any]:
    """Step the envs with ``actions_N``, store the new transitions and advance ``state``.

    An env whose episode ended on the previous step only resets on this one (gymnasium's
    next-step autoreset): its "transition" joins two episodes and is not stored. A truncated
    transition keeps its real final observation and ``terminated=False``, so it is bootstrapped.
    With ``masks`` each transition keeps the legal actions of its ``s'`` and ``state.mask_NA``
    follows the observation (on an autoreset step, the new episode's first). Returns the envs' ``infos``.
    """
    next_obs_NO, rewards_N, terminated_N, truncated_N, infos = envs.step(actions_N)
    if masks is not None:
        state.mask_NA = masks.read(envs, infos, state.steps + len(actions_N), terminated_N)
    valid_N = ~state.autoreset_N
    replay.add(
        state.obs_NO, actions_N, rewards_N, next_obs_NO, terminated_N, truncated_N, valid_N, next_mask_N=state.mask_NA
    )
    state.autoreset_N = terminated_N | truncated_N
    state.obs_NO = next_obs_NO
    state.steps += len(actions_N)
    state.iteration += 1
    return infos


def finished_episodes(infos: dict[str, Any]) -> Iterator[tuple[float, int]]:
    """``(return, length)`` of each episode that ended on this step (gymnasium's ``RecordEpisodeStatistics``)."""
    if "_episode" in infos:
        for i in np.flatnonzero(infos["_episode"]):
            yield float(infos["episode"]["r"][i]), int(infos["episode"]["l"][i])


def run_local(parts: Parts, envs: gym.vector.VectorEnv, session: Session, state: LoopState, end: int) -> float:
    """Run the loop from ``state`` until ``end`` env steps (or a signal); returns the run's seconds in the loop."""
    config, actor, learner, replay = parts.config, parts.actor, parts.learner, parts.replay
    eps = (config.epsilon_schedule, config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps)
    sync = TargetSync(config, learner)
    stop = session.start(state)
    evaluation = parts.evaluation
    while state.steps < end and stop.signum is None and state.return_reached_at is None:
        epsilon = epsilon_at(state.steps - config.epsilon_decay_start, *eps)
        actions_N = actor.act(state.obs_NO, epsilon, state.iteration, state.mask_NA)  # act (legal actions if masked)
        infos = env_step(envs, replay, state, actions_N, parts.masks)  # step, store (an autoreset step stores nothing)
        for episode_return, length in finished_episodes(infos):
            state.episodes += 1
            session.episode(state, episode_return, length, epsilon)
            sync.after_episode(state.episodes)  # sync, every k episodes
        if (
            state.steps >= state.learning_starts_at
            and state.iteration % config.train_frequency == 0
            and replay.can_sample(config.batch_size)
        ):
            lr = config.learning_rate * linear_schedule(state.steps, 1.0, config.lr_final_fraction, config.total_steps)
            beta = linear_schedule(state.steps, config.beta0, 1.0, config.total_steps)  # PER's IS exponent -> 1
            for _ in range(config.gradient_steps):
                batch = replay.sample(config.batch_size, parts.rng, beta=beta)  # sample
                update = learner.update(batch, epsilon=epsilon, lr=lr)  # update
                state.updates += 1
                if parts.threads is not None:
                    parts.threads.after_update(state.updates)  # auto: time the update, re-choose the count when due
                session.loss(state, update.loss, parts.device)
                replay.update_priorities(batch.indices, update.td_abs_B)  # prioritized: p_i <- (|delta_i| + eps)^alpha
                sync.after_update()  # sync, Polyak after each update
        sync.after_steps(state.steps, config.num_envs)  # sync, every N env steps
        if evaluation is not None and evaluation.due(state.steps) and evaluation.reached(evaluation(state.steps)):
            state.return_reached_at = state.steps  # evaluate; stop_return: the loop ends after this log, checkpoint
        session.tick(state, epsilon, config.num_envs)  # log, checkpoint
    return session.end(state)
