"""The session: what a run needs around its loop, none of which changes what it learns.

- the run directory: refused when it already holds another run, ``config.json`` written first;
- resume: the newest whole checkpoint (damaged ones skipped with a warning), checked against the
  run's env id and network before anything runs;
- cadence: a ``metrics.csv`` / TensorBoard row every ``log_interval`` env steps, a checkpoint
  every ``checkpoint_every`` (and at the end, at ``stop_at`` or on a signal);
- signals: SIGINT / SIGTERM stop the loop at a step boundary, after a checkpoint; in the final
  evaluation (:class:`EvaluationSignals`) they stop it at once, to be played again on resume;
- divergence: a NaN or infinite TD loss stops the run, keeping the last good checkpoint.

A checkpoint is the named components' ``state_dict()`` (:func:`dueldqn.checkpoint.save_checkpoint`
routes their tensors, arrays and JSON values to files); the session only knows them as
:class:`Stateful`. The loop calls the session; the session never calls the loop.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from dueldqn.checkpoint import (
    REPLAY,
    Checkpoint,
    StateDict,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from dueldqn.config import Config
from dueldqn.errors import EvaluationInterrupted, TrainingDiverged, TrainingInterrupted
from dueldqn.executors.cadence import crossed
from dueldqn.files import CONFIG_FILE, atomic_write_json
from dueldqn.logger import RunLogger


class Stateful(Protocol):
    """A component a checkpoint holds."""

    def state_dict(self) -> StateDict: ...
    def load_state_dict(self, state: StateDict) -> None: ...


@dataclass
class Counters:
    """What both executors count: the fields a :class:`Session` reads, and the running loss of a log row.

    A checkpoint holds them (:meth:`state_dict`), so a resumed run goes on counting where it stopped."""

    steps: int = 0  # env steps taken, summed over envs
    updates: int = 0  # gradient steps taken
    episodes: int = 0  # episodes finished
    return_reached_at: int | None = None  # step of the evaluation that reached stop_return; a resume stays stopped
    wall_seconds: float = 0.0  # wall time of earlier sessions of this run (resumes)
    train_seconds: float = 0.0  # time in the training loop in earlier sessions
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # TD losses since the last log row
    loss_count: int = 0  # gradient steps since the last log row
    log_step: int = 0  # step of the last log row

    def state_dict(self) -> StateDict:
        """The counters (JSON), any arrays as they are, and the running loss (a tensor)."""
        return {k: v for k, v in vars(self).items() if k != "loss_sum"} | {"loss_sum": self.loss_sum.reshape(1)}

    def load_state_dict(self, state: StateDict) -> None:
        """Take the counters and arrays of :meth:`state_dict`; the loss sum is copied onto its device."""
        for key, value in state.items():
            if key == "loss_sum":
                self.loss_sum.copy_(value.reshape(()))
            elif key == "return_reached_at" and value == -1:  # older checkpoints wrote -1 for "none"
                self.return_reached_at = None
            else:
                setattr(self, key, value)


@dataclass(kw_only=True)
class LoopState(Counters):
    """The local loop's counters and live observation: what a checkpoint must hold to go on."""

    obs_NO: np.ndarray
    autoreset_N: np.ndarray  # envs whose next step only resets them (gymnasium next-step autoreset)
    iteration: int = 0  # vector steps taken
    learning_starts_at: int = 0  # no updates before this step (moved on when a resume refills the replay)
    mask_NA: np.ndarray | None = None  # action masks: the legal actions of obs_NO (None: the run uses none)

    def state_dict(self) -> StateDict:
        """The counters (JSON), the live observation, mask and flags (arrays) and the running loss (a tensor)."""
        state = super().state_dict()
        if self.mask_NA is None:  # a run without masks saves as before
            del state["mask_NA"]
        return state


class NumpyRNG:
    """A numpy ``Generator`` as a component (its bit generator's state is JSON)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state_dict(self) -> StateDict:
        return {"numpy_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: StateDict) -> None:
        self.rng.bit_generator.state = state["numpy_generator"]


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


def load_newest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest checkpoint of ``run_dir`` that loads whole; damaged ones are reported and skipped."""
    problems = []
    for path in list_checkpoints(run_dir):
        try:
            return load_checkpoint(path)
        except ValueError as err:
            problems.append(str(err))
            warnings.warn(f"skipping damaged checkpoint: {err}", stacklevel=2)
    detail = "; ".join(problems) if problems else "it has none"
    raise ValueError(f"cannot resume {run_dir}: no whole checkpoint ({detail})")


class StopSignal:
    """Records SIGINT / SIGTERM so the loop can stop at a step boundary and checkpoint."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class EvaluationSignals(StopSignal):
    """SIGINT / SIGTERM inside the block raise :class:`EvaluationInterrupted` at once (the final evaluation).

    The loop's :class:`StopSignal` has been given back by then, and without this a SIGTERM would kill the process
    mid-evaluation. An evaluation holds no state worth a checkpoint: it is seeded, and a resume plays it again.
    As for :class:`StopSignal`, handlers are set only in the main thread and the previous ones come back after.
    """

    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__()
        self.run_dir, self.step = run_dir, step

    def _handle(self, signum: int, frame: Any) -> None:
        raise EvaluationInterrupted(self.run_dir, self.step, signum)


class Session:
    """One sitting of a run: its directory, logger, progress bar, checkpoints and stop signal.

    Args:
        config: the run's config (written to ``config.json``).
        run_dir: the run directory (new and empty, or the resumed run's).
        ckpt: the checkpoint a resume starts from, or ``None``.
        meta: what every checkpoint records beside the components (config, network spec).
        progress: show a progress bar.
        tensorboard: also write TensorBoard events.
    """

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        ckpt: Checkpoint | None,
        *,
        meta: dict[str, Any],
        progress: bool,
        tensorboard: bool,
    ) -> None:
        self.start_time = time.perf_counter()
        self.config, self.run_dir, self.meta = config, run_dir, meta
        if ckpt is None:
            prepare_run_dir(run_dir)
        atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())
        resume_step = None if ckpt is None else ckpt.step
        self.logger = RunLogger(run_dir, tensorboard=tensorboard, resume_step=resume_step)
        self.components: dict[str, Stateful] = {}
        self.checkpointed_step = -1 if ckpt is None else ckpt.step
        self.stop = StopSignal()
        self._progress = progress
        self.bar: Any = None
        self.loop_start = self.log_time = 0.0

    def restore(self, states: Mapping[str, StateDict]) -> None:
        """Load every component's state; one that does not fit is a ``ValueError`` naming it."""
        for name, component in self.components.items():
            if name in states:
                try:
                    component.load_state_dict(states[name])
                except (RuntimeError, KeyError, ValueError) as err:
                    raise ValueError(f"the checkpoint's {name!r} does not fit this run: {err}") from err

    def start(self, state: Counters) -> StopSignal:
        """Open the progress bar and the signal handlers as the loop starts."""
        self.bar = tqdm(
            total=self.config.total_steps,
            initial=state.steps,
            disable=not self._progress,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
        )
        self.log_time = self.loop_start = time.perf_counter()
        return self.stop.__enter__()

    def episode(self, state: Counters, episode_return: float, length: int, epsilon: float) -> None:
        """Record one finished episode."""
        self.logger.episode(state.steps, state.episodes, episode_return, length)
        self.bar.set_postfix_str(f"return {episode_return:.1f}, eps {epsilon:.3f}", refresh=False)

    def loss(self, state: Counters, loss: torch.Tensor, device: torch.device) -> None:
        """Add one update's loss to the log row's sum; a non-finite loss ends the run (on the CPU at once)."""
        if device.type == "cpu" and not math.isfinite(loss.item()):  # free on the CPU; GPU: per log row
            raise self.diverged(state, loss.item())
        state.loss_sum += loss
        state.loss_count += 1

    def tick(self, state: Counters, epsilon: float, taken: int) -> None:
        """After the loop took ``taken`` env steps: a log row every ``log_interval`` steps, a checkpoint at each
        multiple of ``checkpoint_every`` the steps crossed."""
        if self.log_due(state):
            self.log(state, epsilon)
        self.checkpoint_if_due(state, taken)

    def log_due(self, state: Counters) -> bool:
        """Whether a log row is due: ``log_interval`` env steps since the last, or the run's last step."""
        return state.steps - state.log_step >= self.config.log_interval or state.steps >= self.config.total_steps

    def log(self, state: Counters, epsilon: float) -> tuple[float, float]:
        """Write a ``metrics.csv`` / TensorBoard row and start the next; returns its env steps/s and mean loss.

        Raises:
            TrainingDiverged: the row's mean loss is NaN or infinite.
        """
        now = time.perf_counter()
        sps = (state.steps - state.log_step) / max(now - self.log_time, 1e-9)
        mean_loss = state.loss_sum.item() / state.loss_count if state.loss_count else math.nan
        if state.loss_count and not math.isfinite(mean_loss):
            raise self.diverged(state, mean_loss)
        threads = torch.get_num_threads()  # the loop's count (dueldqn.threads may change it)
        self.logger.train(state.steps, mean_loss, epsilon, sps, threads)
        self.bar.update(state.steps - self.bar.n)
        self.bar.set_description_str(f"loss {mean_loss:.3g}, {sps:,.0f} steps/s, {threads} thr", refresh=False)
        state.loss_sum.zero_()
        state.loss_count = 0
        self.log_time, state.log_step = now, state.steps
        return sps, mean_loss

    def checkpoint_if_due(self, state: Counters, taken: int) -> None:
        """A checkpoint when the last ``taken`` env steps crossed a multiple of ``checkpoint_every``."""
        every = self.config.checkpoint_every
        if every and crossed(state.steps, taken, every):
            self.checkpoint(state)

    def checkpoint(self, state: Counters) -> Path:
        """Write the components' states, with this sitting's time added to the run's."""
        self.checkpointed_step = state.steps
        now = time.perf_counter()
        states = {name: component.state_dict() for name, component in self.components.items()}
        states["loop"] |= {
            "wall_seconds": state.wall_seconds + now - self.start_time,
            "train_seconds": state.train_seconds + now - self.loop_start,
        }
        if not self.config.save_replay:
            states.pop(REPLAY, None)
        return save_checkpoint(self.run_dir, state.steps, states, meta=self.meta, keep=self.config.keep_checkpoints)

    def end(self, state: Counters) -> float:
        """As the loop ends: a checkpoint unless one holds this step; on a signal, stop. Returns the loop's seconds."""
        train_seconds = state.train_seconds + time.perf_counter() - self.loop_start
        if self.stop.signum is not None or self.checkpointed_step != state.steps:
            self.checkpoint(state)
        if self.stop.signum is not None:
            raise TrainingInterrupted(self.run_dir, state.steps, self.stop.signum)
        return train_seconds

    def close(self) -> None:
        """Restore the signal handlers, close the bar and the logger (also after an error)."""
        self.stop.__exit__()
        if self.bar is not None:
            self.bar.close()
        self.logger.close()

    def diverged(self, state: Counters, loss: float) -> TrainingDiverged:
        """The error that ends a run whose loss became ``loss``, naming the step and the checkpoint kept."""
        last = list_checkpoints(self.run_dir)
        kept = f"the last good checkpoint, {last[0]}, is kept" if last else "no checkpoint had been written yet"
        return TrainingDiverged(
            f"the TD loss became {loss} at step {state.steps} (update {state.updates}); training stopped and "
            f"{kept}. Lower --learning-rate, clip gradients (--max-grad-norm 10) or use --loss huber, "
            "then start again (or resume from that checkpoint)."
        )
