"""The Ape-X driver: the learner's loop over Ray actors (:mod:`dueldqn.executors.ray_apex`), top to bottom.

    publish theta_0; queue 2 chunks on every runner
    until T env steps:
        for each finished chunk: count it, log its episodes, queue the runner's next chunk
        if warm and samples per insert below the cap:
            take the oldest of 4 sample requests in flight (shards in turn), ask for the next
            theta <- theta - lr grad 1/B sum_i w_i l(y_i - Q(S_i, A_i | theta))       (update)
            send |delta| back to the batch's shard                                     (priorities)
            every M updates: ray.put(weights, version)                                (publish)
            target sync, log, checkpoint, evaluate on the env-step counter, as in the local loop

A runner's death costs its queued chunks (Ray restarts it); a shard's death, or a signal, ends the
run after a checkpoint (the signal) or with the last one kept (the shard). The run directory gets
the local loop's files plus ``apex.csv``: env steps/s, updates/s, samples per insert, weight lag,
replay size and per-runner episodes at every log interval.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from dueldqn.checkpoint import REPLAY, Checkpoint, atomic_write_json, list_checkpoints
from dueldqn.config import Config
from dueldqn.evaluate import TrainingEvaluation
from dueldqn.executors.apex_parts import (
    APEX_CSV,
    ApexCsv,
    ApexResult,
    ApexState,
    Meter,
    ShardsState,
    samples_per_insert,
)
from dueldqn.executors.session import Session
from dueldqn.exploration import apex_epsilons, linear_schedule
from dueldqn.learner import Learner
from dueldqn.threads import ThreadPolicy

SAMPLES_IN_FLIGHT = 4  # sample requests the learner keeps queued on the shards
BATCHES_PER_SAMPLE = 8  # batches per request: one actor call costs about a millisecond, an MLP update less


def run_apex(
    config: Config,
    run_dir: Path,
    *,
    q_net: torch.nn.Module,
    spec: dict[str, Any],
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype,
    frames: bool,
    device: torch.device,
    resume: Checkpoint | None = None,
    evaluate: tuple[Any, int] | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    record_ids: bool = False,
    name_prefix: str = "",
    mask_actions: int = 0,
) -> ApexResult:
    """Train ``q_net`` with Ape-X on Ray and leave checkpoints, ``metrics.csv`` and ``apex.csv`` in ``run_dir``.

    ``evaluate``: the env's raw observation space and action count, for evaluations during training
    (``config.eval_every``; they play in the driver, between updates, while the runners go on).
    ``mask_actions``: the shards keep each transition's ``s'`` action mask of this many actions (0: none).

    Raises:
        ValueError: for an on-policy algorithm (SARSA: Ape-X's runners follow many policies).
        ApexError: a replay shard died (the last checkpoint is kept).
        TrainingInterrupted: SIGINT / SIGTERM, after a checkpoint.
    """
    from dueldqn.executors import ray_apex as rx  # the only module that imports Ray

    if config.algo not in ("dqn", "double"):
        raise ValueError(f"the ray executor (Ape-X) learns off-policy: use algo dqn or double, not {config.algo!r}")
    # Batches arrive as read-only numpy views of Ray's object store; torch only reads them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    from dueldqn.agent import noise_generator

    generator = torch.Generator(device=device).manual_seed(config.seed)
    learner = Learner(
        q_net, config, device=device, generator=generator, noise_generator=noise_generator(config, device)
    )
    loss_sum = torch.zeros((), device=device)
    state = ApexState(runner_episodes=[0] * config.num_env_runners)
    session = Session(config, run_dir, resume, meta={"config": config.to_dict(), "network": spec, "executor": "ray"},
                      progress=progress, tensorboard=tensorboard)  # fmt: skip
    start, logger = session.start_time, session.logger
    if resume is not None:
        state.load_state_dict(resume.states["loop"])  # first: the runners' lives are numbered from its steps
    apex_file = ApexCsv(run_dir / APEX_CSV)
    started = rx.connect(config)
    try:
        cluster = rx.ApexCluster(config, obs_shape=obs_shape, obs_dtype=obs_dtype, frames=frames,
                                 first_life=state.steps, record_ids=record_ids, name_prefix=name_prefix,
                                 mask_actions=mask_actions)  # fmt: skip
    except BaseException:  # the real error goes up; the cluster closed its actors, the Ray we started stops
        rx.shutdown(started)
        session.close()
        apex_file.close()
        raise
    spi_cap = samples_per_insert(config)
    num_envs = config.num_env_runners * config.envs_per_runner
    eps_mean = float(apex_epsilons(num_envs, config.apex_epsilon_base, config.apex_epsilon_alpha).mean())
    versions: dict[int, list[int]] = {r: [] for r in range(config.num_env_runners)}
    lives: dict[int, set[int]] = {r: set() for r in range(config.num_env_runners)}
    failed, lags = 0, []  # runner calls lost to a death that Ray did not retry
    resting: dict[int, float] = {}  # runners whose call failed, and when to call them again
    chunk_steps = config.runner_chunk_steps * config.envs_per_runner
    session.components = {"learner": learner, REPLAY: ShardsState(cluster), "loop": state, "logger": logger,
                          "apex_csv": apex_file}  # fmt: skip
    # As in the local loop: an MLP learns on one thread; a conv net's count is timed and re-chosen (dueldqn.threads),
    # since the runners and shards share the machine's cores with the learner.
    threads = ThreadPolicy.for_run(config.torch_threads, frames, device).__enter__()
    session.components["threads"] = threads
    try:
        if resume is not None:
            session.restore(resume.states)  # the learner, every shard's replay, the counters, the metrics files
            learner.version = state.updates
        cluster.publish(learner.get_weights())
        queued: dict[Any, int] = {}  # run() call -> runner
        parked: list[int] = []  # runners with nothing queued (rate limit)
        slack = spi_cap * chunk_steps * config.num_env_runners
        issued = state.steps
        for r in range(config.num_env_runners):
            for _ in range(rx.CALLS_QUEUED):
                if issued < config.total_steps:
                    queued[cluster.run(r, state.steps)] = r
                    issued += chunk_steps
        samples: deque[tuple[int, Any]] = deque()
        next_shard = 0
        last_ckpt = state.steps
        # The session reads steps, wall_seconds and train_seconds of the state: ApexState has them (not a LoopState).
        stop = session.start(state)  # type: ignore[arg-type]  # session.close() restores the signal handlers
        meter = Meter(config, state, logger, apex_file, session.bar, eps_mean)
        evaluation = (TrainingEvaluation(config, q_net, evaluate[0], evaluate[1], logger, state.steps)
                      if config.eval_every and evaluate is not None else None)  # fmt: skip
        while ((queued or resting or state.steps < config.total_steps) and stop.signum is None
               and state.return_reached_at < 0):  # fmt: skip
            # Finished chunks: count them and queue the runner's next one.
            for ref in rx.wait(list(queued), timeout=0.0):  # finished chunks
                r = queued.pop(ref)
                try:
                    out = rx.get(ref)
                except rx.RunnerDied:  # Ray restarts it; its lost chunk is collected again, a second on
                    cluster.shard_call("stats", timeout=60.0)  # unless a shard died: that ends the run
                    failed += 1
                    issued -= chunk_steps
                    resting[r] = time.perf_counter() + 1.0
                    continue
                if out is not None:
                    cluster.pids.add(out["pid"])  # a restarted runner's new process
                    state.steps += out["env_steps"]
                    state.transitions += out["transitions"]
                    versions[r].append(out["version"])
                    lives[r].add(out["life"])
                    lags.append(learner.version - out["version"])
                    for _, episode_return, length in out["episodes"]:
                        state.episodes += 1
                        state.runner_episodes[r] += 1
                        logger.episode(state.steps, state.episodes, episode_return, length)
                        if config.target_sync == "episodes" and state.episodes % config.target_sync_every == 0:
                            learner.sync_target()
                parked.append(r)
            for r in [r for r, until in resting.items() if until <= time.perf_counter()]:
                parked.append(r)
                del resting[r]
            # Queue the next chunks, unless the rate limit holds the runners until the learner catches up.
            target = spi_cap * max(state.transitions - config.learning_starts, 0)
            behind = config.runner_rate_limit and state.updates * config.batch_size < target - slack
            while parked and issued < config.total_steps and stop.signum is None and not behind:
                runner = parked.pop(0)
                queued[cluster.run(runner, state.steps)] = runner
                issued += chunk_steps
            # Learn, while the replay ratio is below its cap.
            warm = state.transitions >= max(config.learning_starts, config.batch_size)
            allowed = spi_cap * max(state.transitions - config.learning_starts, 0) + config.batch_size
            if warm and state.updates * config.batch_size < allowed:
                beta = linear_schedule(state.steps, config.beta0, 1.0, config.total_steps)
                while len(samples) < SAMPLES_IN_FLIGHT:
                    samples.append((next_shard, cluster.sample(next_shard, BATCHES_PER_SAMPLE, beta)))
                    next_shard = (next_shard + 1) % config.replay_shards
                shard, ref = samples.popleft()
                try:
                    batches = rx.get(ref)
                except (rx.RunnerDied, rx.RayTaskError) as err:
                    raise rx.ApexError(f"replay shard {shard} failed: {err}") from err
                lr = config.learning_rate * linear_schedule(state.steps, 1.0, config.lr_final_fraction,
                                                            config.total_steps)  # fmt: skip
                for batch in batches or []:
                    update = learner.update(batch, epsilon=eps_mean, lr=lr)
                    state.updates += 1
                    threads.after_update(state.updates)
                    cluster.update_priorities(shard, batch, update.td_abs_B.cpu().numpy())
                    loss_sum += update.loss
                    if config.target_sync == "polyak":
                        learner.sync_target(config.tau)
                    if state.updates % config.weight_sync_every == 0:
                        cluster.publish(learner.get_weights())
            elif queued:
                rx.wait(list(queued), timeout=0.02)  # nothing to learn yet: wait for a chunk
            if config.target_sync == "steps" and state.steps // config.target_sync_every > state.target_syncs:
                state.target_syncs = state.steps // config.target_sync_every
                learner.sync_target()
            if evaluation is not None and evaluation.due(state.steps) and evaluation(state.steps):
                state.return_reached_at = state.steps  # stop_return: the loop ends after this step's log, checkpoint
            if state.steps - meter.step >= config.log_interval:
                meter.row(state, learner.version, lags, cluster.shard_call("stats", timeout=30.0), loss_sum)
            if config.checkpoint_every and state.steps - last_ckpt >= config.checkpoint_every:
                session.checkpoint(state)  # type: ignore[arg-type]
                last_ckpt = state.steps
        flushed = cluster.flush()  # every push has landed: the shards hold everything sent
        shard_stats = cluster.shard_call("stats")
        if meter.step != state.steps:
            meter.row(state, learner.version, lags, shard_stats, loss_sum)
        session.end(state)  # type: ignore[arg-type]  # the last checkpoint; on a signal, TrainingInterrupted
    except rx.ApexError as err:
        kept = list_checkpoints(run_dir)
        raise rx.ApexError(f"{err}; the run stopped and "
                           + (f"its last checkpoint, {kept[0]}, is kept" if kept else "no checkpoint had been written")
                           ) from err  # fmt: skip
    finally:
        threads.__exit__(None, None, None)
        cluster.close()
        rx.shutdown(started, cluster.pids)
        session.close()
        apex_file.close()
    seconds = time.perf_counter() - start
    state.wall_seconds += seconds
    restarts = failed + sum(len(life) - 1 for life in lives.values())
    epsilons = {f["runner"]: f["epsilons"] for f in flushed if f is not None}
    atomic_write_json(
        run_dir / "apex.json", {"restarts": restarts, "epsilons": {str(k): v for k, v in epsilons.items()}}
    )
    spi = state.updates * config.batch_size / max(state.transitions, 1)
    lag_mean = float(np.mean(lags)) if lags else math.nan
    return ApexResult(state, seconds, restarts, versions, lives, epsilons, shard_stats, lag_mean, spi)


class ApexNetwork(NamedTuple):
    """The Q-network Ape-X trains and what describes it (built from one env of ``config.env_id``)."""

    q_net: torch.nn.Module
    spec: dict[str, Any]  # network_spec: what the model file and checkpoints record
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    frames: bool  # Atari's stacked frames (frame replay)
    raw_space: Any  # the env's own observation space (the Agent encodes it)
    n_actions: int
    mask_actions: int = 0  # n_actions when the run uses action masks, else 0


def apex_network(config: Config, device: torch.device) -> ApexNetwork:
    """Build the learner's network (seeded by ``config.seed``) for ``config.env_id``."""
    from dueldqn.agent import head_spec, network_kwargs, network_spec
    from dueldqn.envs import make_vec_env, raw_observation_space, stacks_frames
    from dueldqn.envs.masks import run_masks
    from dueldqn.networks import build_q_network

    envs = make_vec_env(config.env_id, 1, config.seed, config.backend)  # the spaces only
    obs_space, raw_space = envs.single_observation_space, raw_observation_space(envs)
    n_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    head = head_spec(config)
    spec = network_spec(obs_space, n_actions, config.dueling, config.hidden_sizes, raw_space, head)  # type: ignore[arg-type]
    torch.manual_seed(config.seed)
    q_net = build_q_network(obs_space, envs.single_action_space, **network_kwargs(config)).to(device)
    masks = None
    if config.action_mask != "off":  # the runners judge their envs alike; the shards must know before they start
        masks = run_masks(config.action_mask, config.env_id, envs, envs.reset(seed=config.seed)[1])
    envs.close()
    return ApexNetwork(q_net, spec, tuple(obs_space.shape), np.dtype(obs_space.dtype), stacks_frames(config.env_id),  # type: ignore[arg-type]
                       raw_space, n_actions, n_actions if masks is not None else 0)  # fmt: skip


def train_apex(config: Config, run_dir: Path, *, resume: Checkpoint | None, progress: bool,
               tensorboard: bool) -> tuple[ApexNetwork, ApexResult]:  # fmt: skip
    """The ``executor="ray"`` part of :func:`dueldqn.training.train`: build the learner's network and run Ape-X.

    ``train()`` then evaluates, saves the model and writes the summary, as for a local run.
    """
    from dueldqn.executors.session import resolve_device

    if resume is not None and "transitions" not in resume.states.get("loop", {}):  # an Ape-X loop's counters
        raise ValueError(f"checkpoint {resume.path} is not from a ray run")
    device = resolve_device(config.device)
    net = apex_network(config, device)
    result = run_apex(config, run_dir, q_net=net.q_net, spec=net.spec, obs_shape=net.obs_shape,
                      obs_dtype=net.obs_dtype, frames=net.frames, device=device, resume=resume,
                      evaluate=(net.raw_space, net.n_actions), progress=progress, tensorboard=tensorboard,
                      mask_actions=net.mask_actions)  # fmt: skip
    return net, result
