"""The training loop: Deep Q-learning and Deep SARSA with experience replay and a target network.

It follows the lecture's algorithm box, over ``N`` vectorised envs::

    initialise Q(s, a | theta), target theta_targ <- theta, replay memory B
    for each step:
        A_t ~ b(S_t)                     epsilon-greedy w.r.t. Q             (act)
        S_t+1, R_t+1 <- env(A_t)                                             (step)
        B <- B + (S_t, A_t, R_t+1, S_t+1, terminated)                        (store)
        K ~ B                                                                (sample)
        theta <- theta - alpha grad 1/|K| sum (y_i - Q(S_i, A_i | theta))^2  (update)
        every k episodes / N steps: theta_targ <- theta                      (sync)

with the target ``y`` of :mod:`dueldqn.targets` (Q-learning, Double Q, SARSA, Expected SARSA).
Unlike the lecture's sketch, a time-limit truncation is not the end of the MDP: the transition
is stored with its real final observation and bootstrapped (only ``terminated`` masks it).
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from dueldqn.actor import Actor
from dueldqn.agent import Agent, network_spec, same_network
from dueldqn.checkpoint import (
    MODEL_FILE,
    Checkpoint,
    atomic_write_json,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    save_model,
)
from dueldqn.config import Config, load_config, resolve_config
from dueldqn.envs import (
    make_eval_env,
    make_vec_env,
    raw_observation_space,
    restore_vector_env_state,
    stacks_frames,
    vector_env_state,
)
from dueldqn.evaluate import EvalResult, evaluate
from dueldqn.exploration import ExplorationDraws, epsilon_at, linear_schedule
from dueldqn.learner import Learner
from dueldqn.logger import METRICS_CSV, RunLogger
from dueldqn.networks import build_q_network
from dueldqn.numpy_mlp import NumpyAdamW
from dueldqn.plotting import plot_run
from dueldqn.replay import FrameReplayBuffer, ReplayBuffer
from dueldqn.replay.prioritized import PrioritizedReplay

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
SUMMARY_FIELDS = (
    "env_id",
    "algo",
    "seed",
    "total_steps",
    "updates",
    "wall_seconds",
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


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint it can resume from."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        self.run_dir, self.step, self.signum = run_dir, step, signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} at step {step}; a checkpoint was written. "
            f"Resume with: dueldqn train --resume {run_dir}"
        )


class TrainingDiverged(RuntimeError):
    """The TD loss became NaN or infinite; the run stopped without checkpointing the bad state."""


@dataclass
class LoopState:
    """Counters and the live observation of the loop: what a checkpoint must hold to go on."""

    obs_NO: np.ndarray
    autoreset_N: np.ndarray  # envs whose next step only resets them (gymnasium next-step autoreset)
    steps: int = 0  # env steps taken, summed over envs
    iteration: int = 0  # vector-env steps taken
    updates: int = 0  # gradient steps taken
    episodes: int = 0  # episodes finished
    loss_count: int = 0  # gradient steps since the last log row
    log_step: int = 0  # step of the last log row
    learning_starts_at: int = 0  # no updates before this step (moved on when a resume refills the replay)
    wall_seconds: float = 0.0  # wall time of earlier sessions of this run (resumes)
    train_seconds: float = 0.0  # time in the training loop in earlier sessions

    def counters(self) -> dict[str, Any]:
        """The JSON-ready fields (everything but the arrays)."""
        return {k: v for k, v in vars(self).items() if k not in ("obs_NO", "autoreset_N")}


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda when available, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def default_run_dir(config: Config) -> Path:
    """``runs/<env>__<algo>__s<seed>__<time>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.env_id.replace('/', '-')}__{config.algo}__s{config.seed}__{stamp}"


def prepare_run_dir(run_dir: Path, *, create: bool = True) -> Path:
    """Create ``run_dir``; refuse one that already holds files (that would mix two runs)."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ValueError(
            f"run directory {run_dir} already exists and is not empty; choose another --run-dir "
            "(or resume the run there with 'dueldqn train --resume')"
        )
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


Replay = ReplayBuffer | FrameReplayBuffer | PrioritizedReplay


def env_step(envs: gym.vector.VectorEnv, replay: Replay, state: LoopState, actions_N: np.ndarray) -> dict[str, Any]:
    """Step the envs with ``actions_N``, store the new transitions and advance ``state``.

    An env whose episode ended on the previous step only resets on this one (gymnasium's
    next-step autoreset): its "transition" joins two episodes and is not stored. A truncated
    transition keeps its real final observation and ``terminated=False``, so it is bootstrapped.
    Returns the envs' ``infos``.
    """
    next_obs_NO, rewards_N, terminated_N, truncated_N, infos = envs.step(actions_N)
    replay.add(state.obs_NO, actions_N, rewards_N, next_obs_NO, terminated_N, truncated_N, ~state.autoreset_N)
    state.autoreset_N = terminated_N | truncated_N
    state.obs_NO = next_obs_NO
    state.steps += len(actions_N)
    state.iteration += 1
    return infos


def crossed(steps: int, num_envs: int, every: int) -> bool:
    """Whether the last vector step (``num_envs`` env steps, ending at ``steps``) crossed a multiple of ``every``."""
    return steps // every != (steps - num_envs) // every


def _checkpoint_tensors(
    q_net: torch.nn.Module,
    target_net: torch.nn.Module,
    optimizer: torch.optim.Optimizer | NumpyAdamW,
    generator: torch.Generator,
    loss_sum: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Weights, optimizer moments, the torch generator and the running loss as named tensors."""
    tensors = {f"online.{k}": v for k, v in q_net.state_dict().items()}
    tensors |= {f"target.{k}": v for k, v in target_net.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, moments in optim_state["state"].items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).clone()  # numpy_mlp shares one buffer
    tensors["generator"] = generator.get_state()
    tensors["loss_sum"] = loss_sum.reshape(1)
    return tensors, optim_state["param_groups"]


def _restore_tensors(
    ckpt: Checkpoint,
    q_net: torch.nn.Module,
    target_net: torch.nn.Module,
    optimizer: torch.optim.Optimizer | NumpyAdamW,
    generator: torch.Generator,
    loss_sum: torch.Tensor,
) -> None:
    """Load what :func:`_checkpoint_tensors` saved; another network's checkpoint is a ``ValueError``."""
    groups: dict[str, dict[str, torch.Tensor]] = {"online": {}, "target": {}}
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in ckpt.tensors.items():
        kind, _, name = key.partition(".")
        if kind in groups:
            groups[kind][name] = value
        elif kind == "optimizer":
            index, _, moment = name.partition(".")
            moments.setdefault(int(index), {})[moment] = value
    try:
        q_net.load_state_dict(groups["online"])
        target_net.load_state_dict(groups["target"])
        optimizer.load_state_dict({"state": moments, "param_groups": ckpt.state["optimizer_param_groups"]})
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {ckpt.path} does not fit this run's network or optimizer: {err}") from err
    generator.set_state(ckpt.tensors["generator"])
    loss_sum.copy_(ckpt.tensors["loss_sum"].reshape(()))


def _load_newest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest checkpoint of ``run_dir`` that loads whole; damaged ones are reported and skipped."""
    checkpoints = list_checkpoints(run_dir)
    problems = []
    for path in checkpoints:
        try:
            return load_checkpoint(path)
        except ValueError as err:
            problems.append(str(err))
            warnings.warn(f"skipping damaged checkpoint: {err}", stacklevel=2)
    detail = "; ".join(problems) if problems else "it has none"
    raise ValueError(f"cannot resume {run_dir}: no whole checkpoint ({detail})")


class _StopSignal:
    """Records SIGINT / SIGTERM so the loop can stop at a step boundary and checkpoint."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


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

    The run directory receives ``config.json``, ``metrics.csv``, TensorBoard events in ``tb/``,
    ``checkpoints/``, ``model.safetensors``, ``learning_curve.png``, ``eval.json`` and
    ``summary.json``.

    Raises:
        ValueError: bad input (config, env id, run directory, checkpoint), before anything runs.
        TrainingInterrupted: on SIGINT / SIGTERM, after writing a checkpoint.
        TrainingDiverged: when the TD loss becomes NaN or infinite.
    """
    start_time = time.perf_counter()
    ckpt: Checkpoint | None = None
    if resume is not None:
        run_path = Path(resume)
        if config is not None or preset is not None or set(overrides) - {"total_steps"}:
            raise ValueError("a resumed run keeps its own config; only total_steps (--steps) may change")
        if not (run_path / CONFIG_FILE).is_file():
            raise ValueError(f"cannot resume {run_path}: expected a run directory with {CONFIG_FILE}")
        config = load_config(run_path / CONFIG_FILE).replace(**overrides)
        ckpt = _load_newest_checkpoint(run_path)
        if ckpt.state["config"]["env_id"] != config.env_id:
            raise ValueError(
                f"checkpoint {ckpt.path} is for {ckpt.state['config']['env_id']}, the run for {config.env_id}"
            )
    else:
        if config is None:
            config = resolve_config(overrides.pop("env_id", None), preset, overrides)
        elif overrides:
            config = config.replace(**overrides)
        run_path = Path(run_dir) if run_dir is not None else default_run_dir(config)
        prepare_run_dir(run_path, create=False)  # refuse a used run dir before anything runs
    # --- Ape-X on Ray (issue 12): a separate executor; the lead moves this dispatch into executors/ on merge. ---
    if config.executor == "ray":
        if stop_at is not None:
            raise ValueError("stop_at is not supported by the ray executor")
        if ckpt is None:
            prepare_run_dir(run_path)
        from dueldqn.executors.apex import train_apex  # imports Ray; the local path never does

        return train_apex(config, run_path, resume=ckpt, progress=progress, tensorboard=tensorboard,
                          start_time=start_time)  # fmt: skip
    # --- end of the Ape-X dispatch ---
    device = resolve_device(config.device)
    envs = make_vec_env(config.env_id, config.num_envs, config.seed, config.backend)  # checks the env id and spaces
    # The network's input (encoded by dueldqn.spaces where needed) and the env's own observations.
    obs_space, raw_space = envs.single_observation_space, raw_observation_space(envs)
    n_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    conv = len(obs_space.shape) == 3  # type: ignore[arg-type]
    frames = stacks_frames(config.env_id)  # Atari's stacks of consecutive frames, not any image
    if frames and config.n_step > 1:
        raise ValueError("n-step returns over the frame replay (Atari ids) are not built yet; use --n-step 1")
    spec = network_spec(obs_space, n_actions, config.dueling, config.hidden_sizes, raw_space)  # type: ignore[arg-type]
    if ckpt is not None and not same_network(ckpt.state["network"], spec):
        raise ValueError(
            f"checkpoint {ckpt.path} holds another network ({ckpt.state['network']}) than this run's {spec}"
        )
    if ckpt is None:
        prepare_run_dir(run_path)
    atomic_write_json(run_path / CONFIG_FILE, config.to_dict())

    # One seed, explicit generators: numpy for replay sampling, torch for SARSA's A', and exploration
    # draws that are a function of (seed, step) alone.
    torch.manual_seed(config.seed)  # network initialisation
    rng = np.random.default_rng(config.seed)
    draws = ExplorationDraws(config.seed, config.num_envs)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    q_net = build_q_network(
        obs_space, envs.single_action_space, dueling=config.dueling, hidden_sizes=config.hidden_sizes
    )
    q_net.to(device)
    if conv:  # oneDNN / cuDNN convolutions run faster on NHWC weights (about 10% per update on 2 cores)
        q_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    learner = Learner(q_net, config, device=device, generator=generator)
    storage: ReplayBuffer | FrameReplayBuffer
    if frames:  # stacked frames: each frame stored once, stacks rebuilt by index
        storage = FrameReplayBuffer(config.buffer_size, obs_space.shape, obs_space.dtype, num_envs=config.num_envs)  # type: ignore[arg-type]
    else:  # n-step returns are folded when a batch is sampled
        storage = ReplayBuffer(config.buffer_size, obs_space.shape, obs_space.dtype, num_envs=config.num_envs,  # type: ignore[arg-type]
                               n_step=config.n_step, gamma=config.gamma)  # fmt: skip
    replay: Replay = (
        PrioritizedReplay(storage, alpha=config.alpha, eps=config.priority_eps) if config.prioritized else storage
    )
    loss_sum = torch.zeros((), device=device)
    num_envs = config.num_envs

    if ckpt is None:
        obs_NO, _ = envs.reset(seed=config.seed)
        state = LoopState(obs_NO=obs_NO, autoreset_N=np.zeros(num_envs, dtype=bool))
        state.learning_starts_at = config.learning_starts
    else:
        _restore_tensors(ckpt, q_net, learner.target, learner.optimizer, generator, loss_sum)
        learner.optimizer_loaded()
        rng.bit_generator.state = ckpt.state["numpy_generator"]
        state = LoopState(obs_NO=ckpt.arrays["obs"], autoreset_N=ckpt.arrays["autoreset"], **ckpt.state["loop"])
        if ckpt.state["envs"] is not None:
            restore_vector_env_state(envs, ckpt.state["envs"])
        else:  # the env's own state cannot be saved (e.g. the Atari emulator): start new episodes
            state.obs_NO, _ = envs.reset(seed=config.seed + state.steps)
            state.autoreset_N = np.zeros(num_envs, dtype=bool)
        if ckpt.replay is not None:
            replay.load_state_dict(ckpt.replay)
        else:  # checkpointed without its replay: collect a fresh warm-up before learning again
            state.learning_starts_at = state.steps + config.learning_starts
        with open(run_path / METRICS_CSV, "r+b") as f:  # drop rows logged after the checkpoint
            f.truncate(ckpt.state["metrics_bytes"])
    logger = RunLogger(run_path, tensorboard=tensorboard, resume_step=state.steps if ckpt is not None else None)

    checkpointed_step = -1 if ckpt is None else state.steps

    def write_checkpoint() -> Path:
        nonlocal checkpointed_step
        checkpointed_step = state.steps
        tensors, param_groups = _checkpoint_tensors(q_net, learner.target, learner.optimizer, generator, loss_sum)
        now = time.perf_counter()
        loop = state.counters() | {
            "wall_seconds": state.wall_seconds + now - start_time,
            "train_seconds": state.train_seconds + now - loop_start,
        }
        return save_checkpoint(
            run_path,
            state.steps,
            tensors=tensors,
            arrays={"obs": state.obs_NO, "autoreset": state.autoreset_N},
            replay=replay.state_dict() if config.save_replay else None,
            state={
                "config": config.to_dict(),
                "network": spec,
                "loop": loop,
                "optimizer_param_groups": param_groups,
                "numpy_generator": rng.bit_generator.state,
                "envs": vector_env_state(envs),
                "metrics_bytes": logger.flush(),
            },
            keep=config.keep_checkpoints,
        )

    def diverged(loss: float) -> TrainingDiverged:
        last = list_checkpoints(run_path)
        kept = f"the last good checkpoint, {last[0]}, is kept" if last else "no checkpoint had been written yet"
        return TrainingDiverged(
            f"the TD loss became {loss} at step {state.steps} (update {state.updates}); training stopped and "
            f"{kept}. Lower --learning-rate, clip gradients (--max-grad-norm 10) or use --loss huber, "
            "then start again (or resume from that checkpoint)."
        )

    # Small MLPs run fastest on one thread (no fork/join per op); conv nets use the cores. The same
    # for numpy's BLAS, where a fixed thread count also keeps results independent of the machine's
    # core count (a multithreaded sgemm may split, and so round, its sums differently).
    blas_threads = threadpool_limits(limits=config.torch_threads or 1, user_api="blas") if not conv else None
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads or (threads if conv else 1))
    # Small MLPs on the CPU act (and learn) through numpy: the same maths without torch's per-op overhead.
    actor = Actor(q_net, n_actions, draws=draws, device=device, fast_numpy=config.numpy_mlp)

    bar = tqdm(
        total=config.total_steps,
        initial=state.steps,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
    )
    log_time = loop_start = time.perf_counter()
    try:
        with _StopSignal() as stop:
            end = config.total_steps if stop_at is None else min(stop_at, config.total_steps)
            while state.steps < end and stop.signum is None:
                epsilon = epsilon_at(
                    state.steps,
                    config.epsilon_schedule,
                    config.epsilon_start,
                    config.epsilon_end,
                    config.epsilon_decay_steps,
                )
                # Act with the behaviour policy b: epsilon-greedy w.r.t. the online network.
                actions_N = actor.act(state.obs_NO, epsilon, state.iteration)
                # Step and store. An env whose episode ended last step only resets now: no transition.
                infos = env_step(envs, replay, state, actions_N)

                if "_episode" in infos:
                    for i in np.flatnonzero(infos["_episode"]):
                        state.episodes += 1
                        episode_return = float(infos["episode"]["r"][i])
                        logger.episode(state.steps, state.episodes, episode_return, int(infos["episode"]["l"][i]))
                        bar.set_postfix_str(f"return {episode_return:.1f}, eps {epsilon:.3f}", refresh=False)
                        if config.target_sync == "episodes" and state.episodes % config.target_sync_every == 0:
                            learner.sync_target()

                # Learn from a batch of replayed experience, once warm-up is over.
                if (
                    state.steps >= state.learning_starts_at
                    and state.iteration % config.train_frequency == 0
                    and replay.can_sample(config.batch_size)
                ):
                    lr = config.learning_rate * linear_schedule(
                        state.steps, 1.0, config.lr_final_fraction, config.total_steps
                    )
                    beta = linear_schedule(state.steps, config.beta0, 1.0, config.total_steps)  # PER's IS exponent
                    for _ in range(config.gradient_steps):
                        batch = replay.sample(config.batch_size, rng, beta=beta)
                        update = learner.update(batch, epsilon=epsilon, lr=lr)
                        loss = update.loss
                        state.updates += 1
                        if device.type == "cpu" and not math.isfinite(loss.item()):  # free on the CPU; GPU: per log row
                            raise diverged(loss.item())
                        if isinstance(replay, PrioritizedReplay):  # p_i <- (|delta_i| + eps)^alpha
                            replay.update_priorities(batch.indices, update.td_abs_B.cpu().numpy())  # type: ignore[arg-type]
                        loss_sum += loss
                        state.loss_count += 1
                        if config.target_sync == "polyak":
                            learner.sync_target(config.tau)
                if config.target_sync == "steps" and crossed(state.steps, num_envs, config.target_sync_every):
                    learner.sync_target()

                if state.steps - state.log_step >= config.log_interval or state.steps >= config.total_steps:
                    now = time.perf_counter()
                    sps = (state.steps - state.log_step) / max(now - log_time, 1e-9)
                    mean_loss = loss_sum.item() / state.loss_count if state.loss_count else math.nan
                    if state.loss_count and not math.isfinite(mean_loss):
                        raise diverged(mean_loss)
                    logger.train(state.steps, mean_loss, epsilon, sps)
                    bar.update(state.steps - bar.n)
                    bar.set_description_str(f"loss {mean_loss:.3g}, {sps:,.0f} steps/s", refresh=False)
                    loss_sum.zero_()
                    state.loss_count = 0
                    log_time, state.log_step = now, state.steps
                if config.checkpoint_every and crossed(state.steps, num_envs, config.checkpoint_every):
                    write_checkpoint()
            train_seconds = state.train_seconds + time.perf_counter() - loop_start
            if stop.signum is not None or checkpointed_step != state.steps:  # at the end, or on a signal
                write_checkpoint()
            if stop.signum is not None:
                raise TrainingInterrupted(run_path, state.steps, stop.signum)
    finally:
        if blas_threads is not None:  # first: it restores every thread pool it saw, OpenMP's too
            blas_threads.restore_original_limits()
        torch.set_num_threads(threads)
        bar.close()
        envs.close()
        logger.close()

    agent = Agent(q_net.eval(), raw_space, n_actions, epsilon=config.eval_epsilon, seed=config.seed + 1)
    if state.steps < config.total_steps:  # paused at stop_at
        return TrainResult(run_path, {}, agent, None, finished=False)
    # Evaluate the greedy (or eval_epsilon) policy on a separate env.
    eval_env = make_eval_env(config.env_id, seed=config.seed + 10_000)
    result = evaluate(
        eval_env,
        lambda obs: int(agent.predict(obs, deterministic=config.eval_epsilon == 0)[0]),
        episodes=config.eval_episodes,
        seed=config.seed + 10_000,
    )
    eval_env.close()
    atomic_write_json(run_path / "eval.json", {"epsilon": config.eval_epsilon, **result.to_dict()})
    save_model(run_path / MODEL_FILE, q_net, spec)
    plot_run(run_path, run_path / "learning_curve.png")
    summary = {
        "env_id": config.env_id,
        "algo": config.algo,
        "seed": config.seed,
        "total_steps": state.steps,
        "updates": state.updates,
        "wall_seconds": 0.0,
        "steps_per_second": state.steps / train_seconds if train_seconds > 0 else 0.0,
        "eval_mean_return": result.mean,
        "eval_std_return": result.std,
        "eval_episodes": len(result.returns),
    }
    summary["wall_seconds"] = state.wall_seconds + time.perf_counter() - start_time
    atomic_write_json(run_path / SUMMARY_FILE, summary)
    return TrainResult(run_path, summary, agent, result)
