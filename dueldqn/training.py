"""``train()``: resolve the run, build its components, run the loop, then evaluate and summarise.

The steps, top to bottom:

1. resolve: the config (preset, overrides, or the resumed run's own) and the run directory;
2. build: envs, the Q-network, the :class:`~dueldqn.learner.Learner` (online and target networks,
   AdamW), the replay (uniform ring or Atari's frame replay, optionally prioritized, n-step), the
   :class:`~dueldqn.actor.Actor` and the :class:`~dueldqn.executors.session.Session`; on resume,
   every component loads its state from the newest checkpoint;
3. run: :func:`dueldqn.executors.local.run_local`, the lecture's algorithm box;
4. finish: evaluate the greedy policy on a separate env, save the model, plot, write the summary.

Unlike the lecture's sketch, a time-limit truncation is not the end of the MDP: the transition
is stored with its real final observation and bootstrapped (only ``terminated`` masks it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dueldqn import seeds
from dueldqn.agent import Agent, noise_generator, same_network
from dueldqn.build import EnvSpec, build_actor, build_learner, build_network, build_replay, build_storage
from dueldqn.checkpoint import REPLAY, Checkpoint, save_model
from dueldqn.config import Config, load_config, resolve_config
from dueldqn.device import resolve_device
from dueldqn.envs import make_vec_env, restore_vector_env_state, vector_env_state
from dueldqn.envs.masks import run_masks
from dueldqn.errors import EvaluationInterrupted, TrainingDiverged, TrainingInterrupted
from dueldqn.evaluate import EvalResult, TrainingEvaluation, evaluate_agent
from dueldqn.executors.local import Parts, run_local
from dueldqn.executors.session import (
    EvaluationSignals,
    LoopState,
    NumpyRNG,
    Session,
    default_run_dir,
    load_newest_checkpoint,
    prepare_run_dir,
)
from dueldqn.files import CONFIG_FILE, CURVE_FILE, EVAL_FILE, MODEL_FILE, SUMMARY_FILE, atomic_write_json
from dueldqn.plotting import plot_run
from dueldqn.threads import ThreadPolicy, fixed_threads

__all__ = [
    "CONFIG_FILE",
    "SUMMARY_FIELDS",
    "EvaluationInterrupted",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "train",
]

SUMMARY_FIELDS = (
    "env_id",
    "algo",
    "seed",
    "total_steps",
    "updates",
    "wall_seconds",
    "train_seconds",
    "eval_seconds",
    "steps_per_second",
    "eval_mean_return",
    "eval_std_return",
    "eval_episodes",
)


@dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, its summary and the trained agent."""

    run_dir: Path
    summary: dict[str, Any]  # empty while ``finished`` is False
    agent: Agent
    eval: EvalResult | None  # None while ``finished`` is False
    finished: bool = True  # False: stopped at ``stop_at`` with a checkpoint; resume to go on


class VectorEnvState:
    """The envs as a component: a snapshot of every env, or ``None`` where it cannot be taken (Atari's emulator)."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.envs = envs

    def state_dict(self) -> dict[str, Any]:
        return {"snapshot": vector_env_state(self.envs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["snapshot"] is not None:
            restore_vector_env_state(self.envs, state["snapshot"])


def resolve_run(
    config: Config | None,
    run_dir: str | Path | None,
    resume: str | Path | None,
    preset: str | None,
    overrides: dict[str, Any],
) -> tuple[Config, Path, Checkpoint | None]:
    """The run's config, directory and the checkpoint it resumes from (``None`` for a new run)."""
    if resume is None:
        if config is None:
            config = resolve_config(overrides.pop("env_id", None), preset, overrides)
        elif overrides:
            config = config.replace(**overrides)
        run_path = Path(run_dir) if run_dir is not None else default_run_dir(config)
        prepare_run_dir(run_path, create=False)  # refuse a used run dir before anything runs
        return config, run_path, None
    run_path = Path(resume)
    if config is not None or preset is not None or set(overrides) - {"total_steps"}:
        raise ValueError("a resumed run keeps its own config; only total_steps (--steps) may change")
    if not (run_path / CONFIG_FILE).is_file():
        raise ValueError(f"cannot resume {run_path}: expected a run directory with {CONFIG_FILE}")
    config = load_config(run_path / CONFIG_FILE).replace(**overrides)
    ckpt = load_newest_checkpoint(run_path)
    if ckpt.meta["config"]["env_id"] != config.env_id:
        raise ValueError(f"checkpoint {ckpt.path} is for {ckpt.meta['config']['env_id']}, the run for {config.env_id}")
    return config, run_path, ckpt


def train(
    config: Config | None = None,
    *,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    preset: str | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    stop_at: int | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a Q-network and leave the run's files in ``run_dir``.

    ``train()`` trains the CartPole-v1 preset; ``train(env_id="Acrobot-v1", algo="double")``
    takes that env's preset with Double Q-learning; ``train(config)`` runs a given config
    (``overrides`` then change its fields). ``train(resume=RUN_DIR)`` continues a run from its
    newest whole checkpoint (``total_steps`` may be raised to train longer).

    ``stop_at`` pauses the run once it has taken that many env steps (fewer than ``total_steps``):
    it writes a checkpoint and returns a result with ``finished=False``, the agent's current greedy
    policy and no evaluation; ``train(resume=run_dir, stop_at=...)`` goes on exactly as an
    uninterrupted run would (schedules still run over ``total_steps``). Hyperparameter search
    evaluates trials this way without hooks in the loop.

    With ``eval_every`` the loop evaluates the network every that many env steps (``eval`` rows in
    ``metrics.csv``); with ``stop_return`` too, it ends at the first evaluation whose mean return
    reaches it, and finishes there as at ``total_steps`` (``summary["stop_return_reached_at"]``).

    The run directory receives ``config.json``, ``metrics.csv``, TensorBoard events in ``tb/``,
    ``checkpoints/``, ``model.safetensors``, ``learning_curve.png``, ``eval.json`` and
    ``summary.json``.

    Raises:
        ValueError: bad input (config, env id, run directory, checkpoint), before anything runs.
        TrainingInterrupted: on SIGINT / SIGTERM, after writing a checkpoint; its subclass
            EvaluationInterrupted in the final evaluation (a resume plays it again).
        TrainingDiverged: when the TD loss becomes NaN or infinite.
    """
    config, run_path, ckpt = resolve_run(config, run_dir, resume, preset, overrides)
    # Ape-X on Ray (issue 12): its own executor, which builds its components in Ray actors.
    if config.executor == "ray":
        if stop_at is not None:
            raise ValueError("stop_at is not supported by the ray executor")
        from dueldqn.executors.apex import train_apex  # imports Ray; the local path never does

        start = time.perf_counter()
        net, apex = train_apex(config, run_path, resume=ckpt, progress=progress, tensorboard=tensorboard)
        per_second = 1 / max(apex.seconds, 1e-9)
        return finish(
            config,
            run_path,
            net.q_net,
            net.spec,
            net.raw_space,
            net.n_actions,
            steps=apex.state.steps,
            updates=apex.state.updates,
            train_seconds=apex.seconds,
            wall_seconds=time.perf_counter() - start,  # the Ape-X counters keep no earlier sittings' time
            reached=apex.state.return_reached_at,
            extra={
                "executor": "ray",
                "updates_per_second": apex.state.updates * per_second,
                "samples_per_insert": apex.samples_per_insert,
                "weight_lag": apex.lag_mean,
                "runner_restarts": apex.restarts,
            },
        )
    device = resolve_device(config.device)
    envs = make_vec_env(config.env_id, config.num_envs, config.seed, config.backend)  # checks the env id and spaces
    env = EnvSpec.of(envs, config.env_id)
    spec = env.network_spec(config)
    if ckpt is not None and not same_network(ckpt.meta["network"], spec):
        raise ValueError(
            f"checkpoint {ckpt.path} holds another network ({ckpt.meta['network']}) than this run's {spec}"
        )
    session = Session(
        config,
        run_path,
        ckpt,
        meta={"config": config.to_dict(), "network": spec},
        progress=progress,
        tensorboard=tensorboard,
    )

    # One seed, explicit generators: the network's initialisation, numpy for replay sampling, torch for SARSA's A'
    # (the learner's), and exploration draws that are a function of (seed, step) alone (ExplorationDraws).
    rng = np.random.default_rng(config.seed)
    noise = noise_generator(config, device)  # noisy nets: one generator for the actor's and the learner's noise
    q_net = build_network(config, env, device, seed=config.seed)
    learner = build_learner(config, q_net, device, noise=noise)
    # Action masks (auto: where the env gives them), judged from a reset; a resumed run uses them if it did.
    masks, obs_NO, infos = None, None, dict[str, Any]()
    if ckpt is None or (config.action_mask != "off" and "mask_NA" in ckpt.states["loop"]):
        obs_NO, infos = envs.reset(seed=config.seed)  # a resumed run's envs are restored (or reset) below
    if config.action_mask != "off" and obs_NO is not None:
        masks = run_masks(config.action_mask, config.env_id, envs, infos)
    mask_actions = env.n_actions if masks is not None else 0
    replay = build_replay(
        config,
        build_storage(
            config, env.obs_shape, env.obs_dtype, frames=env.frames, num_envs=config.num_envs, mask_actions=mask_actions
        ),
    )
    actor = build_actor(config, q_net, env, seed=config.seed, num_envs=config.num_envs, device=device, noise=noise)
    loss_sum = torch.zeros((), device=device)
    threads = ThreadPolicy.for_run(config.torch_threads, env.conv, device)  # timed for conv nets on the CPU
    if ckpt is None:
        assert obs_NO is not None
        state = LoopState(
            obs_NO=obs_NO,
            autoreset_N=np.zeros(config.num_envs, dtype=bool),
            loss_sum=loss_sum,
            learning_starts_at=config.learning_starts,
        )
        if masks is not None:
            state.mask_NA = masks.read(envs, infos, 0)
    else:
        loop = ckpt.states["loop"]
        state = LoopState(obs_NO=loop["obs_NO"], autoreset_N=loop["autoreset_N"], loss_sum=loss_sum)
    session.components = {
        "learner": learner,
        "actor": actor,
        REPLAY: replay,
        "loop": state,
        "rng": NumpyRNG(rng),
        "envs": VectorEnvState(envs),
        "logger": session.logger,
        "threads": threads,
    }
    if ckpt is not None:
        session.restore(ckpt.states)
        if ckpt.states["envs"]["snapshot"] is None:  # not saved (EnvPool, Box2D, MuJoCo): new episodes
            state.obs_NO, infos = envs.reset(seed=seeds.resumed_env_seed(config.seed, state.steps))
            state.autoreset_N = np.zeros(config.num_envs, dtype=bool)
            if masks is not None:
                state.mask_NA = masks.read(envs, infos, state.steps)
        if REPLAY not in ckpt.states:  # checkpointed without its replay: collect a fresh warm-up first
            state.learning_starts_at = state.steps + config.learning_starts

    evaluation = (
        TrainingEvaluation(config, q_net, env.raw_space, env.n_actions, session.logger, state.steps)
        if config.eval_every
        else None
    )
    parts = Parts(config, actor, learner, replay, rng, device, evaluation, threads, masks)
    end = config.total_steps if stop_at is None else min(stop_at, config.total_steps)
    try:
        with threads:
            train_seconds = run_local(parts, envs, session, state, end)
    finally:
        envs.close()
        session.close()

    reached = state.return_reached_at
    if state.steps < config.total_steps and reached is None:  # paused at stop_at
        agent = Agent(
            q_net.eval(),
            env.raw_space,
            env.n_actions,
            epsilon=config.eval_epsilon,
            seed=config.seed + seeds.FINAL_EVAL_POLICY,
        )
        return TrainResult(run_path, {}, agent, None, finished=False)
    wall_seconds = state.wall_seconds + time.perf_counter() - session.start_time
    return finish(
        config,
        run_path,
        q_net,
        spec,
        env.raw_space,
        env.n_actions,
        steps=state.steps,
        updates=state.updates,
        train_seconds=train_seconds,
        wall_seconds=wall_seconds,
        reached=reached,
        eval_threads=threads.current,
    )


def finish(
    config: Config,
    run_path: Path,
    q_net: torch.nn.Module,
    spec: dict[str, Any],
    raw_space: gym.Space,
    n_actions: int,
    *,
    steps: int,
    updates: int,
    train_seconds: float,
    wall_seconds: float,
    reached: int | None = None,
    extra: dict[str, Any] | None = None,
    eval_threads: int | None = None,
) -> TrainResult:
    """After any executor: evaluate the greedy (or ``eval_epsilon``) policy on separate envs, save the model, plot,
    and write ``eval.json`` and ``summary.json`` (its time includes the evaluation).

    ``eval_threads``: torch's thread count for the evaluation (the loop's last; ``None``: as it is).
    ``reached``: the env step at which an evaluation during training reached ``stop_return`` (the run stopped
    there), or ``None``; the summary records it as ``stop_return_reached_at``."""
    start = time.perf_counter()
    agent = Agent(
        q_net.eval(), raw_space, n_actions, epsilon=config.eval_epsilon, seed=config.seed + seeds.FINAL_EVAL_POLICY
    )
    # the count the loop ended on (one a shared machine can give); a signal stops the evaluation, to be played again
    with fixed_threads(eval_threads), EvaluationSignals(run_path, steps):
        result = evaluate_agent(
            config.env_id,
            agent,
            episodes=config.eval_episodes,
            epsilon=config.eval_epsilon,
            seed=config.seed + seeds.FINAL_EVAL,
            action_mask=config.action_mask,
        )
    eval_seconds = time.perf_counter() - start
    atomic_write_json(run_path / EVAL_FILE, {"epsilon": config.eval_epsilon, **result.to_dict()})
    save_model(run_path / MODEL_FILE, q_net, spec)
    plot_run(run_path, run_path / CURVE_FILE)
    summary = {
        "env_id": config.env_id,
        "algo": config.algo,
        "seed": config.seed,
        "total_steps": steps,
        "updates": updates,
        "wall_seconds": wall_seconds + time.perf_counter() - start,
        "train_seconds": train_seconds,  # the loop's, over every sitting of the run
        "eval_seconds": eval_seconds,  # the final evaluation's
        "steps_per_second": steps / train_seconds if train_seconds > 0 else 0.0,
        "eval_mean_return": result.mean,
        "eval_std_return": result.std,
        "eval_episodes": len(result.returns),
        **({} if config.stop_return is None else {"stop_return_reached_at": reached}),
        **(extra or {}),
    }
    atomic_write_json(run_path / SUMMARY_FILE, summary)
    return TrainResult(run_path, summary, agent, result)
