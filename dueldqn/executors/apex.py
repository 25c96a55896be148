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

from dueldqn.agent import noise_generator
from dueldqn.build import EnvSpec, build_learner, build_network
from dueldqn.checkpoint import REPLAY, Checkpoint, list_checkpoints
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
from dueldqn.executors.cadence import TargetSync
from dueldqn.executors.session import Session
from dueldqn.exploration import apex_epsilons, linear_schedule
from dueldqn.files import APEX_FILE, atomic_write_json
from dueldqn.learner import Learner
from dueldqn.threads import ThreadPolicy

SAMPLES_IN_FLIGHT = 4  # sample requests the learner keeps queued on the shards
BATCHES_PER_SAMPLE = 8  # batches per request: one actor call costs about a millisecond, an MLP update less


def run_apex(
    config: Config,
    run_dir: Path,
    net: ApexNetwork,
    *,
    device: torch.device,
    resume: Checkpoint | None = None,
    evaluate: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    record_ids: bool = False,
    name_prefix: str = "",
) -> ApexResult:
    """Train ``net.q_net`` with Ape-X on Ray and leave checkpoints, ``metrics.csv`` and ``apex.csv`` in ``run_dir``.

    ``evaluate``: evaluate during training (``config.eval_every``; the games play in the driver, between
    updates, while the runners go on). The shards keep each transition's ``s'`` action mask of
    ``net.mask_actions`` actions (0: none).

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
    q_net = net.q_net
    learner = build_learner(config, q_net, device, noise=noise_generator(config, device))
    state = ApexState(runner_episodes=[0] * config.num_env_runners, loss_sum=torch.zeros((), device=device))
    session = Session(
        config,
        run_dir,
        resume,
        meta={"config": config.to_dict(), "network": net.spec, "executor": "ray"},
        progress=progress,
        tensorboard=tensorboard,
    )
    if resume is not None:
        state.load_state_dict(resume.states["loop"])  # first: the runners' lives are numbered from its steps
    apex_file = ApexCsv(run_dir / APEX_CSV)
    started = rx.connect(config)
    try:
        cluster = rx.ApexCluster(
            config,
            obs_shape=net.obs_shape,
            obs_dtype=net.obs_dtype,
            frames=net.frames,
            first_life=state.steps,
            record_ids=record_ids,
            name_prefix=name_prefix,
            mask_actions=net.mask_actions,
        )
    except BaseException:  # the real error goes up; the cluster closed its actors, the Ray we started stops
        rx.shutdown(started)
        session.close()
        apex_file.close()
        raise
    # As in the local loop (dueldqn.threads): an MLP learns on one thread, a conv net's count is timed and re-chosen.
    threads = ThreadPolicy.for_run(config.torch_threads, net.frames, device)
    session.components = {
        "learner": learner,
        REPLAY: ShardsState(cluster),
        "loop": state,
        "logger": session.logger,
        "apex_csv": apex_file,
        "threads": threads,
    }
    try:
        with threads:
            if resume is not None:
                session.restore(resume.states)  # the learner, every shard's replay, the counters, the metrics files
                learner.version = state.updates
            evaluation = (
                TrainingEvaluation(config, q_net, net.raw_space, net.n_actions, session.logger, state.steps)
                if config.eval_every and evaluate
                else None
            )
            driver = Driver(config, learner, cluster, session, state, apex_file, evaluation, threads, rx)
            driver.run()
    except rx.ApexError as err:
        kept = list_checkpoints(run_dir)
        raise rx.ApexError(
            f"{err}; the run stopped and "
            + (f"its last checkpoint, {kept[0]}, is kept" if kept else "no checkpoint had been written")
        ) from err
    finally:
        cluster.close()
        rx.shutdown(started, cluster.pids)
        session.close()
        apex_file.close()
    return driver.result(run_dir)


class Driver:
    """The learner's side of Ape-X, one turn of its loop at a time (:meth:`run`).

    It keeps what a turn needs from the last: the runners' calls in flight and those waiting, the
    sample requests queued on the shards, and what the result reports (weights versions, lives, lags).
    """

    def __init__(
        self,
        config: Config,
        learner: Learner,
        cluster: Any,
        session: Session,
        state: ApexState,
        apex_file: ApexCsv,
        evaluation: TrainingEvaluation | None,
        threads: ThreadPolicy,
        rx: Any,
    ) -> None:
        self.config, self.learner, self.cluster, self.session, self.state = config, learner, cluster, session, state
        self.evaluation, self.threads, self.rx = evaluation, threads, rx
        self.sync = TargetSync(config, learner)
        self.spi_cap = samples_per_insert(config)
        num_envs = config.num_env_runners * config.envs_per_runner
        self.eps_mean = float(apex_epsilons(num_envs, config.apex_epsilon_base, config.apex_epsilon_alpha).mean())
        self.chunk_steps = config.runner_chunk_steps * config.envs_per_runner
        self.slack = self.spi_cap * self.chunk_steps * config.num_env_runners
        self.versions: dict[int, list[int]] = {r: [] for r in range(config.num_env_runners)}
        self.lives: dict[int, set[int]] = {r: set() for r in range(config.num_env_runners)}
        self.lags: list[int] = []
        self.failed = 0  # runner calls lost to a death that Ray did not retry
        self.resting: dict[int, float] = {}  # runners whose call failed, and when to call them again
        self.queued: dict[Any, int] = {}  # run() call -> runner
        self.parked: list[int] = []  # runners with nothing queued (rate limit)
        self.samples: deque[tuple[int, Any]] = deque()  # (shard, sample request) in flight
        self.next_shard = 0
        self.issued = state.steps  # env steps asked of the runners
        self.checked = state.steps  # env steps at the last turn's end (for the cadences)
        self.meter = Meter(config, state, session, apex_file, self.eps_mean)
        self.flushed: list[Any] = []
        self.shard_stats: list[dict[str, Any]] = []

    def run(self) -> None:
        """Publish the first weights, queue the runners' first chunks, then turn until the run's steps are taken::

        for each finished chunk: count it, log its episodes, queue the runner's next chunk   (collect)
        if warm and samples per insert below the cap: update on a sampled batch            (learn)
        target sync, evaluate, log, checkpoint on the env-step counter, as locally       (tick)
        """
        config, state, cluster = self.config, self.state, self.cluster
        cluster.publish(self.learner.get_weights())
        for r in range(config.num_env_runners):
            for _ in range(self.rx.CALLS_QUEUED):
                self.call(r)
        stop = self.session.start(state)  # session.close() restores the signal handlers
        while (
            (self.queued or self.resting or state.steps < config.total_steps)
            and stop.signum is None
            and state.return_reached_at is None
        ):
            self.collect()
            self.queue()
            if not self.learn() and self.queued:
                self.rx.wait(list(self.queued), timeout=0.02)  # nothing to learn yet: wait for a chunk
            self.tick()
        self.flushed = cluster.flush()  # every push has landed: the shards hold everything sent
        self.shard_stats = cluster.shard_call("stats")
        if state.log_step != state.steps:
            self.meter.row(state, self.learner.version, self.lags, self.shard_stats)
        self.session.end(state)  # the last checkpoint; on a signal, TrainingInterrupted

    def call(self, runner: int) -> None:
        """Ask ``runner`` for its next chunk, if the run still needs steps."""
        if self.issued < self.config.total_steps:
            self.queued[self.cluster.run(runner, self.state.steps)] = runner
            self.issued += self.chunk_steps

    def collect(self) -> None:
        """Count the finished chunks and log their episodes; a runner that died rests a second, then goes on."""
        state, rx = self.state, self.rx
        for ref in rx.wait(list(self.queued), timeout=0.0):
            r = self.queued.pop(ref)
            try:
                out = rx.get(ref)
            except rx.RunnerDied:  # Ray restarts it; its lost chunk is collected again, a second on
                self.cluster.shard_call("stats", timeout=60.0)  # unless a shard died: that ends the run
                self.failed += 1
                self.issued -= self.chunk_steps
                self.resting[r] = time.perf_counter() + 1.0
                continue
            if out is not None:
                self.cluster.pids.add(out["pid"])  # a restarted runner's new process
                state.steps += out["env_steps"]
                state.transitions += out["transitions"]
                self.versions[r].append(out["version"])
                self.lives[r].add(out["life"])
                self.lags.append(self.learner.version - out["version"])
                for _, episode_return, length in out["episodes"]:
                    state.episodes += 1
                    state.runner_episodes[r] += 1
                    self.session.logger.episode(state.steps, state.episodes, episode_return, length)
                    self.sync.after_episode(state.episodes)
            self.parked.append(r)
        for r in [r for r, until in self.resting.items() if until <= time.perf_counter()]:
            self.parked.append(r)
            del self.resting[r]

    def queue(self) -> None:
        """Queue the parked runners' next chunks, unless the rate limit holds them until the learner catches up."""
        state, config = self.state, self.config
        target = self.spi_cap * max(state.transitions - config.learning_starts, 0)
        behind = config.runner_rate_limit and state.updates * config.batch_size < target - self.slack
        while self.parked and self.issued < config.total_steps and self.session.stop.signum is None and not behind:
            self.call(self.parked.pop(0))

    def learn(self) -> bool:
        """Update on one sample request's batches while the replay ratio is below its cap; whether it learned."""
        state, config, cluster = self.state, self.config, self.cluster
        warm = state.transitions >= max(config.learning_starts, config.batch_size)
        allowed = self.spi_cap * max(state.transitions - config.learning_starts, 0) + config.batch_size
        if not warm or state.updates * config.batch_size >= allowed:
            return False
        beta = linear_schedule(state.steps, config.beta0, 1.0, config.total_steps)
        while len(self.samples) < SAMPLES_IN_FLIGHT:
            self.samples.append((self.next_shard, cluster.sample(self.next_shard, BATCHES_PER_SAMPLE, beta)))
            self.next_shard = (self.next_shard + 1) % config.replay_shards
        shard, ref = self.samples.popleft()
        try:
            batches = self.rx.get(ref)
        except (self.rx.RunnerDied, self.rx.RayTaskError) as err:
            raise self.rx.ApexError(f"replay shard {shard} failed: {err}") from err
        lr = config.learning_rate * linear_schedule(state.steps, 1.0, config.lr_final_fraction, config.total_steps)
        for batch in batches or []:
            update = self.learner.update(batch, epsilon=self.eps_mean, lr=lr)
            state.updates += 1
            self.threads.after_update(state.updates)
            cluster.update_priorities(shard, batch, update.td_abs_B.cpu().numpy())
            self.session.loss(state, update.loss, self.learner.device)
            self.sync.after_update()
            if state.updates % config.weight_sync_every == 0:
                cluster.publish(self.learner.get_weights())
        return True

    def tick(self) -> None:
        """After a turn: the target sync, an evaluation, a log row and a checkpoint, each when the env steps say."""
        state, taken = self.state, self.state.steps - self.checked
        self.checked = state.steps
        self.sync.after_steps(state.steps, taken)
        evaluation = self.evaluation
        if evaluation is not None and evaluation.due(state.steps) and evaluation.reached(evaluation(state.steps)):
            state.return_reached_at = state.steps  # stop_return: the loop ends after this turn's log, checkpoint
        if self.session.log_due(state):
            self.meter.row(state, self.learner.version, self.lags, self.cluster.shard_call("stats", timeout=30.0))
        self.session.checkpoint_if_due(state, taken)

    def result(self, run_dir: Path) -> ApexResult:
        """What this session did; writes ``apex.json`` (runner restarts, each runner's epsilons)."""
        state = self.state
        state.wall_seconds += time.perf_counter() - self.session.start_time
        restarts = self.failed + sum(len(life) - 1 for life in self.lives.values())
        epsilons = {f["runner"]: f["epsilons"] for f in self.flushed if f is not None}
        atomic_write_json(
            run_dir / APEX_FILE, {"restarts": restarts, "epsilons": {str(k): v for k, v in epsilons.items()}}
        )
        spi = state.updates * self.config.batch_size / max(state.transitions, 1)
        lag_mean = float(np.mean(self.lags)) if self.lags else math.nan
        seconds = time.perf_counter() - self.session.start_time
        return ApexResult(
            state, seconds, restarts, self.versions, self.lives, epsilons, self.shard_stats, lag_mean, spi
        )


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
    from dueldqn.envs import make_vec_env
    from dueldqn.envs.masks import run_masks

    envs = make_vec_env(config.env_id, 1, config.seed, config.backend)  # the spaces only
    env = EnvSpec.of(envs, config.env_id)
    q_net = build_network(config, env, device, seed=config.seed)
    masks = None
    if config.action_mask != "off":  # the runners judge their envs alike; the shards must know before they start
        masks = run_masks(config.action_mask, config.env_id, envs, envs.reset(seed=config.seed)[1])
    envs.close()
    return ApexNetwork(
        q_net,
        env.network_spec(config),
        env.obs_shape,
        env.obs_dtype,
        env.frames,
        env.raw_space,
        env.n_actions,
        env.n_actions if masks is not None else 0,
    )


def train_apex(
    config: Config, run_dir: Path, *, resume: Checkpoint | None, progress: bool, tensorboard: bool
) -> tuple[ApexNetwork, ApexResult]:
    """The ``executor="ray"`` part of :func:`dueldqn.training.train`: build the learner's network and run Ape-X.

    ``train()`` then evaluates, saves the model and writes the summary, as for a local run.
    """
    from dueldqn.device import resolve_device

    if resume is not None and "transitions" not in resume.states.get("loop", {}):  # an Ape-X loop's counters
        raise ValueError(f"checkpoint {resume.path} is not from a ray run")
    device = resolve_device(config.device)
    net = apex_network(config, device)
    result = run_apex(
        config, run_dir, net, device=device, resume=resume, evaluate=True, progress=progress, tensorboard=tensorboard
    )
    return net, result
