"""Ape-X on Ray (Horgan et al., 2018): env-runner actors, replay-shard actors, the learner in the driver.

The only module of dueldqn that imports Ray (``pip install "dueldqn[ray]"``). The pieces::

    runner r (actor, x R)   acts with its copy of theta and Ape-X epsilons, makes chunks of T steps,
                            computes their initial |delta|, pushes them to shard r % S itself
                            (at most 2 pushes in flight: backpressure; Atari's frames sent once
                            each, a FrameChunk), picks up newer weights
    shard s (actor, x S)    prioritized replay of its runners' streams; folds n-step at sampling
    learner (the driver)    keeps 4 sample requests in flight, updates theta, sends |delta| back
                            with the shard's next request, publishes weights every M updates:
                            one ray.put of a versioned numpy copy, handed to the runners with
                            their next call

The driver keeps two ``run`` calls queued on each runner, so a runner never waits for the learner.
A runner that dies is restarted by Ray (``max_restarts=-1``; its queued calls are retried) in a new
life (fresh envs and streams); a shard that dies ends the run with :class:`ApexError`, the last
checkpoint kept.
Checkpoints hold the learner, the shards' replay and the counters; runners restart fresh on resume,
so a Ray run is resumable but not bit-exact. :mod:`dueldqn.executors.apex` has the driver's loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import time
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dueldqn.config import Config
from dueldqn.envs import stacks_frames
from dueldqn.errors import ApexError
from dueldqn.executors.env_runner import Chunk, EnvRunner, pack_frames
from dueldqn.executors.replay_shard import ReplayShard
from dueldqn.replay import Batch
from dueldqn.tensors import Weights

MAX_PUSHES_IN_FLIGHT = 2  # per runner: more would only fill the object store (RLlib's Ape-X used 2 too)
CALLS_QUEUED = 2  # run() calls queued per runner: the next chunk starts as soon as one is done


def connect(config: Config, *, num_cpus: int | None = None) -> bool:
    """Join a Ray cluster, or start a local one; returns whether this call started (and must stop) Ray.

    An initialised Ray (tests, a notebook) is used as it is. Otherwise ``config.ray_address`` or
    ``RAY_ADDRESS`` names the cluster; without either, a running cluster of this machine (``ray
    start --head``) is joined if there is one, else a local Ray with the machine's CPUs is started
    (no dashboard).
    """
    if ray.is_initialized():
        return False
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    try:
        ray.init(address="auto", log_to_driver=False)
    except ConnectionError:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


class RunnerActor:
    """An :class:`EnvRunner` in an actor: ``run`` collects a chunk and pushes it to its shard itself."""

    def __init__(self, config_dict: dict[str, Any], index: int, shard_name: str, first_life: int) -> None:
        config = Config.from_dict(config_dict)
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        life = int.from_bytes(os.urandom(3), "little") + 1 if restarted else first_life
        self.runner = EnvRunner(config, index=index, num_runners=config.num_env_runners, incarnation=life)
        self.frames = stacks_frames(config.env_id)  # Atari: each frame goes to the shard once
        for attempt in range(50):  # by name: a handle argument would pin the restart to the object store
            try:
                self.shard = ray.get_actor(shard_name)
                break
            except ValueError:  # not registered yet
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.pushes: list[ray.ObjectRef] = []

    def run(self, num_steps: int, version: int, weights_box: list[ray.ObjectRef], run_step: int) -> dict[str, Any]:
        """Take newer weights if due, collect ``num_steps`` vector steps, push them; a summary comes back.

        ``run_step``: the run's env steps when the driver asked (the exploration rates anneal on it).
        """
        if weights_box and self.runner.wants_weights(version):
            weights = ray.get(weights_box[0])
            self.runner.set_weights(Weights(weights.version, weights.params))
        chunk: Chunk = self.runner.collect(num_steps, run_step)
        if len(self.pushes) >= MAX_PUSHES_IN_FLIGHT:  # backpressure: wait for the oldest push to land
            ray.get(self.pushes.pop(0))
        self.pushes.append(self.shard.add_chunk.remote(pack_frames(chunk) if self.frames else chunk))
        return {
            "runner": chunk.runner,
            "life": chunk.incarnation,
            "transitions": chunk.transitions,
            "env_steps": chunk.actions_TK.size,
            "episodes": chunk.episodes,
            "version": chunk.weights_version,
            "pid": os.getpid(),
        }

    def pid(self) -> int:
        """This actor's process id (a run that started Ray reaps its local processes by id)."""
        return os.getpid()

    def flush(self) -> dict[str, Any]:
        """Wait until every push has landed; returns the runner's stats."""
        ray.get(self.pushes)
        self.pushes.clear()
        return self.runner.stats()


def runner_cpus(config: Config) -> float:
    """CPUs asked per runner: 1, or a share of the cluster when runners and shards outnumber its CPUs."""
    total = float(ray.cluster_resources().get("CPU", 1.0))
    wanted = config.num_env_runners + config.replay_shards
    if wanted <= total:
        return 1.0
    warnings.warn(f"{wanted} runner and shard actors on {total:g} CPUs: they share them", stacklevel=2)
    return total / wanted


STARTUP_SECONDS = 600  # how long the actors may take to start (a cluster may first have to add nodes)


class ApexCluster:
    """The run's actors: ``S`` shards (on the driver's node) and ``R`` runners; stops them all on :meth:`close`."""

    def __init__(
        self,
        config: Config,
        *,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        frames: bool,
        first_life: int,
        record_ids: bool = False,
        name_prefix: str = "",
        mask_actions: int = 0,
    ) -> None:
        self.config = config
        cpus = runner_cpus(config)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        shard_cls = ray.remote(ReplayShard)
        run_id = os.urandom(4).hex()
        shard_names = [f"dueldqn-shard-{s}-{run_id}" for s in range(config.replay_shards)]
        self.shards: list[Any] = [
            shard_cls.options(num_cpus=cpus, max_restarts=0, scheduling_strategy=here, name=shard_names[s]).remote(
                config,
                index=s,
                obs_shape=obs_shape,
                obs_dtype=obs_dtype,
                frames=frames,
                record_ids=record_ids,
                mask_actions=mask_actions,
            )
            for s in range(config.replay_shards)
        ]
        runner_cls = ray.remote(RunnerActor)
        self.names = [
            f"{name_prefix}dueldqn-runner-{r}" if name_prefix else None for r in range(config.num_env_runners)
        ]
        self.runners: list[Any] = [
            runner_cls.options(num_cpus=cpus, max_restarts=-1, max_task_retries=-1, name=self.names[r]).remote(
                config.to_dict(), r, shard_names[r % config.replay_shards], first_life
            )
            for r in range(config.num_env_runners)
        ]
        self.weights_box: list[ray.ObjectRef] = []
        self._priorities: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in self.shards]
        self.version = -1
        self.pids: set[int] = set()
        # Wait until every actor is up (their start-up is not the run's), noting the runners' processes.
        try:
            self.pids = set(ray.get([runner.pid.remote() for runner in self.runners], timeout=STARTUP_SECONDS))
        except BaseException:  # a placement that never comes, an actor that fails to start: none is left running
            self.close()
            raise

    def publish(self, weights: Weights) -> None:
        """One ``ray.put`` of the weights; runners receive the reference with their next call."""
        self.weights_box = [ray.put(weights)]
        self.version = weights.version

    def run(self, runner: int, run_step: int) -> Pending:
        """Queue one chunk's collection on ``runner``, the run being at env step ``run_step``."""
        return Pending(
            self.runners[runner].run.remote(self.config.runner_chunk_steps, self.version, self.weights_box, run_step)
        )

    def sample(self, shard: int, count: int, beta: float) -> Pending:
        """Ask ``shard`` for ``count`` batches, sending it the ``|delta|`` gathered for it since the last request."""
        pending = self._priorities[shard]
        priorities = None
        if pending:
            priorities = (np.concatenate([i for i, _ in pending]), np.concatenate([p for _, p in pending]))
            pending.clear()
        return Pending(self.shards[shard].sample_many.remote(count, self.config.batch_size, beta, priorities))

    def update_priorities(self, shard: int, batch: Batch, td_abs_B: np.ndarray) -> None:
        """Keep ``|delta|`` for the shard the batch came from: it goes with that shard's next sample request."""
        assert batch.indices is not None
        self._priorities[shard].append((batch.indices, td_abs_B))

    def shard_call(self, method: str, *args: Any, timeout: float | None = 120.0) -> list[Any]:
        """Call ``method`` on every shard and wait; a dead shard is an :class:`ApexError`."""
        try:
            return ray.get([getattr(s, method).remote(*args) for s in self.shards], timeout=timeout)
        except (RayActorError, RayTaskError) as err:
            raise ApexError(f"a replay shard failed during {method}: {err}") from err

    def shard_states(self) -> dict[str, np.ndarray]:
        """Every shard's replay state, keys prefixed ``shard<s>/``."""
        states = self.shard_call("state_dict")
        return {f"shard{s}/{k}": v for s, state in enumerate(states) for k, v in state.items()}

    def load_shard_states(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`shard_states` (a resume)."""
        for s, shard in enumerate(self.shards):
            prefix = f"shard{s}/"
            ray.get(
                shard.load_state_dict.remote({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
            )

    def flush(self, timeout: float = 60.0) -> list[dict[str, Any] | None]:
        """Wait for every runner's pushes to land; a runner that died meanwhile gives None."""
        out: list[dict[str, Any] | None] = []
        for runner in self.runners:
            try:
                out.append(ray.get(runner.flush.remote(), timeout=timeout))
            except (RayActorError, RayTaskError, ray.exceptions.GetTimeoutError):
                out.append(None)
        return out

    def close(self) -> None:
        """Kill every actor of the run (no restarts)."""
        for actor in [*self.runners, *self.shards]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor, no_restart=True)
        self.runners, self.shards = [], []


class Pending:
    """A queued actor call; :meth:`done` is a local check (``ray.wait`` costs milliseconds a call)."""

    def __init__(self, ref: ray.ObjectRef) -> None:
        self.ref = ref
        self.future: concurrent.futures.Future[Any] = ref.future()

    def done(self) -> bool:
        """Whether the result (or the error) is here."""
        return self.future.done()


def wait(pending: list[Pending], timeout: float) -> list[Pending]:
    """The calls of ``pending`` that are done, waiting up to ``timeout`` seconds for the first."""
    ready = [p for p in pending if p.done()]
    if ready or timeout <= 0 or not pending:
        return ready
    concurrent.futures.wait([p.future for p in pending], timeout=timeout, return_when="FIRST_COMPLETED")
    return [p for p in pending if p.done()]


def get(call: Pending) -> Any:
    """The call's result, Ray-free for the caller: an actor's death comes back as :class:`RunnerDied`."""
    try:
        return call.future.result()
    except RayActorError as err:
        raise RunnerDied(str(err)) from err
    except RayTaskError as err:
        if isinstance(err.cause, RayActorError):  # the runner lost its shard, or died inside a call
            raise RunnerDied(str(err)) from err
        raise


class RunnerDied(RuntimeError):
    """An actor call failed because the actor died (a runner: Ray restarts it)."""


def shutdown(started: bool, pids: Collection[int] = ()) -> None:
    """Stop Ray if this run started it, then end any runner process of ours it left behind (by id).

    A runner killed while busy (starting up, or in a chunk) can outlive a local Ray's shutdown by
    up to a minute before it notices; ``pids`` are the runner processes this run saw on this machine.
    """
    if not (started and ray.is_initialized()):
        return
    ray.shutdown()
    deadline = time.perf_counter() + 5.0
    for pid in pids:
        while _is_runner(pid) and time.perf_counter() < deadline:
            time.sleep(0.1)
        if _is_runner(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def session_dir() -> Path:
    """The running Ray's session directory (its logs and sockets under /tmp/ray)."""
    node = ray._private.worker._global_node
    if node is None:
        raise RuntimeError("Ray is not running: no session directory")
    return Path(node.get_session_dir_path())


def remove_session(session: Path) -> None:
    """Remove a stopped Ray's session directory, and /tmp/ray's link to it when that is all that is left.

    For tests and benchmarks; a user's run keeps Ray's logs (useful after a crash).
    """
    shutil.rmtree(session, ignore_errors=True)
    latest = session.parent / "session_latest"
    if latest.is_symlink() and not latest.exists():
        latest.unlink(missing_ok=True)
    if session.parent.is_dir() and not any(session.parent.iterdir()):
        session.parent.rmdir()


def _is_runner(pid: int) -> bool:
    """Whether ``pid`` is still one of our runner processes (not a reused id)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"RunnerActor" in f.read()
    except OSError:
        return False


def now() -> float:
    """Wall time for rates."""
    return time.perf_counter()
