"""Hyperparameter search with Optuna: each trial is an ordinary :func:`~dueldqn.training.train` run.

A trial samples a config from the search space (:mod:`dueldqn.tune.space`) with Optuna's TPE
sampler (seeded) and trains it in its own run directory, ``OUT/trials/trial-NNNN``. Training is
paused at ``rungs`` evenly spaced points (``train(stop_at=...)``, so the loop needs no hooks); at
each the greedy policy plays ``eval_episodes`` episodes on a separate env, seeded as the final
evaluation, and the mean return is reported to the pruner (median, or successive halving), which
may stop the trial there. A trial that runs to the end adds its run's own final evaluation
(``eval_episodes`` of the config). The trial's value is the mean of all these greedy returns: the
area under its greedy learning curve, so a config that solves the task early beats one that
solves it at the last step.

Storage (:mod:`dueldqn.tune.storage`): SQLite by default; Optuna's journal file for ``--jobs K``
on one machine; any SQLAlchemy URL for workers on several machines.

Resuming. The same command again reloads the study and runs trials until ``trials`` have
completed, been pruned or failed on their own. A trial left RUNNING by a worker of this machine
that is no longer alive (its pid, checked with the process's start time, is gone) is marked
FAIL, with the user attribute ``stopped``, and its parameters are queued to be tried again; those
FAIL trials do not count towards the budget. A study made for another env or another base config,
space or rung schedule is refused.
"""

from __future__ import annotations

import multiprocessing
import shutil
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from dueldqn import seeds
from dueldqn.config import Config
from dueldqn.envs import make_eval_env
from dueldqn.errors import TrainingDiverged, TrainingInterrupted
from dueldqn.evaluate import evaluate
from dueldqn.training import train
from dueldqn.tune.space import Space, sample
from dueldqn.tune.storage import fail_dead_trials, open_storage, worker_identity


class TuneInterrupted(TrainingInterrupted):
    """A trial stopped on SIGINT or SIGTERM: it is marked FAIL and queued again; the same command resumes."""

    def __init__(self, number: int, err: TrainingInterrupted) -> None:
        super().__init__(err.run_dir, err.step, err.signum)
        self.args = (
            f"interrupted by {signal.Signals(err.signum).name} in trial {number} at step {err.step}; the trial is "
            "marked FAIL and queued again. Resume the study with the same command.",
        )


@dataclass(frozen=True)
class TuneSettings:
    """What a study searches, where it keeps its trials, and how it prunes them."""

    base: Config  # the config each trial changes (preset, env, total_steps, seed)
    space: Space
    study_name: str
    storage: str  # SQLAlchemy URL, or journal:PATH
    out_dir: Path  # trial run directories, best config, table and plots
    trials: int = 20  # trials to complete (pruned and self-failed ones count)
    jobs: int = 1
    seed: int = 0  # sampler seed
    pruner: str = "median"
    rungs: int = 3  # pauses for a greedy evaluation before the end of each trial
    eval_episodes: int = 10  # greedy episodes at each pause
    startup_trials: int = 5  # trials sampled at random before TPE starts (the median pruner waits for 3 at most)
    tensorboard: bool = False
    timeout: float | None = None  # seconds after which no new trial starts


def rung_steps(total_steps: int, rungs: int) -> list[int]:
    """Env steps at which a trial pauses for a greedy evaluation: ``rungs`` even fractions of the run."""
    return sorted({total_steps * i // (rungs + 1) for i in range(1, rungs + 1)} - {0})


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """Median: stop a trial whose greedy return at a pause is below the median of earlier trials there
    (once min(3, startup_trials) trials have completed).
    Halving: successive halving over env steps, rungs at the first pause x 2^k, keeping the top half."""
    if settings.pruner == "median":  # judged once 3 trials (or the startup ones, if fewer) have finished
        return optuna.pruners.MedianPruner(n_startup_trials=min(3, settings.startup_trials), n_warmup_steps=0)
    if settings.pruner == "halving":
        first = rung_steps(settings.base.total_steps, settings.rungs)[0]
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=2)
    return optuna.pruners.NopPruner()


def _study_settings(settings: TuneSettings) -> dict[str, Any]:
    return {
        "env_id": settings.base.env_id,
        "base_config": settings.base.to_dict(),
        "space": settings.space.to_dict(),
        "rungs": settings.rungs,
        "eval_episodes": settings.eval_episodes,
    }


def open_study(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or load it and refuse it if it was made for another env or search."""
    study = optuna.create_study(
        study_name=settings.study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    mine = _study_settings(settings)
    stored = study.user_attrs.get("settings")
    if stored is None:
        if study.trials:
            raise ValueError(f"study {settings.study_name!r} exists but was not made by dueldqn tune")
        study.set_user_attr("settings", mine)
        return study
    if stored["env_id"] != mine["env_id"]:
        raise ValueError(
            f"study {settings.study_name!r} was created for {stored['env_id']}, not {mine['env_id']}; "
            "choose another --study name"
        )
    changed = [key for key in mine if stored.get(key) != mine[key]]
    if changed:
        details = []
        for key in changed:
            if isinstance(mine[key], dict):
                keys = sorted(k for k in set(mine[key]) | set(stored[key]) if mine[key].get(k) != stored[key].get(k))
                details.append(f"{key} ({', '.join(keys)})")
            else:
                details.append(f"{key} ({stored[key]} there, {mine[key]} now)")
        raise ValueError(
            f"study {settings.study_name!r} was created with other settings: {'; '.join(details)}; "
            "resume it with the same options, or choose another --study name"
        )
    return study


def counted(study: optuna.Study) -> int:
    """Trials that count towards the budget: done (complete, pruned, failed on their own) or running."""
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def _finished(study: optuna.Study) -> int:
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def greedy_return(agent: Any, config: Config, episodes: int) -> float:
    """Mean return of the greedy policy over ``episodes`` episodes, on the final evaluation's env and seed
    (over the legal actions where the run uses action masks)."""
    env = make_eval_env(config.env_id, seed=config.seed + seeds.FINAL_EVAL)
    try:
        result = evaluate(
            env,
            lambda obs: int(agent.predict(obs, deterministic=True)[0]),
            episodes=episodes,
            seed=config.seed + seeds.FINAL_EVAL,
            action_mask=config.action_mask,
            act_masked=lambda obs, mask: int(agent.predict(obs, action_mask=mask)[0]),
        )
    finally:
        env.close()
    return result.mean


def objective(trial: optuna.Trial, settings: TuneSettings) -> float:
    """Train one sampled config, pausing at each rung for a greedy evaluation the pruner sees."""
    trial.set_user_attr("worker", worker_identity())
    try:
        config = settings.base.replace(**sample(settings.space, trial, settings.base))
    except ValueError as err:
        trial.set_user_attr("error", f"invalid config: {err}")
        raise
    trial.set_user_attr("config", config.to_dict())
    run_dir = settings.out_dir / "trials" / f"trial-{trial.number:04d}"
    start = time.perf_counter()
    returns: list[float] = []
    options: dict[str, Any] = {"progress": False, "tensorboard": settings.tensorboard}
    try:
        for i, step in enumerate(rung_steps(config.total_steps, settings.rungs)):
            if i == 0:
                result = train(config, run_dir=run_dir, stop_at=step, **options)
            else:
                result = train(resume=run_dir, stop_at=step, **options)
            returns.append(greedy_return(result.agent, config, settings.eval_episodes))
            trial.report(returns[-1], step)
            trial.set_user_attr("wall_seconds", time.perf_counter() - start)
            if trial.should_prune():
                raise optuna.TrialPruned(f"greedy return {returns[-1]:.1f} at step {step}")
        result = train(resume=run_dir, **options) if returns else train(config, run_dir=run_dir, **options)
    except TrainingDiverged as err:
        trial.set_user_attr("error", str(err))
        raise
    except TrainingInterrupted as err:
        trial.set_user_attr("stopped", "interrupted")
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise TuneInterrupted(trial.number, err) from err
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (e.g. in an evaluation)
        trial.set_user_attr("stopped", "interrupted")
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise
    finally:  # the trial is over: its resumable state is no longer needed (config, metrics and model stay)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    final = float(result.summary["eval_mean_return"])
    returns.append(final)
    trial.report(final, config.total_steps)
    trial.set_user_attr("final_return", final)
    trial.set_user_attr("wall_seconds", time.perf_counter() - start)
    return statistics.fmean(returns)


def worker_study(settings: TuneSettings, index: int, trials_before: int) -> optuna.Study:
    """The study as one worker sees it: with its own seeded TPE sampler and the pruner.

    The sampler's seed mixes the study seed, the worker index and the trial count at start, so
    workers sample different points and a resumed study does not replay its first samples.
    """
    sampler = optuna.samplers.TPESampler(
        seed=settings.seed + 1_000 * index + 7_919 * trials_before,
        n_startup_trials=settings.startup_trials,
        constant_liar=settings.jobs > 1,
    )
    return optuna.load_study(
        study_name=settings.study_name,
        storage=open_storage(settings.storage),
        sampler=sampler,
        pruner=make_pruner(settings),
    )


def run_trials(study: optuna.Study, settings: TuneSettings, deadline: float | None) -> bool:
    """Run one more trial if the budget (and the deadline, a ``time.monotonic`` value) allow; False when done."""
    if counted(study) >= settings.trials or (deadline is not None and time.monotonic() >= deadline):
        return False
    study.optimize(lambda trial: objective(trial, settings), n_trials=1, catch=(TrainingDiverged, ValueError))
    return True


def run_worker(settings: TuneSettings, index: int, trials_before: int) -> None:
    """One worker process of ``--jobs K``: trials until the study has its budget or the timeout passes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = worker_study(settings, index, trials_before)
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    while run_trials(study, settings, deadline):
        pass


def tune(settings: TuneSettings, *, progress: bool = True) -> optuna.Study:
    """Run (or resume) the study of ``settings``; returns it once the budget is spent.

    Raises ``ValueError`` for a storage that cannot be opened or a study made for something else,
    before any trial runs.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.storage)
    study = open_study(settings, storage)
    marked = fail_dead_trials(study, storage)
    if marked:
        print(f"marked FAIL (their worker died): trials {', '.join(map(str, marked))}; queued again")
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    trials_before = len(study.trials)
    bar = tqdm(
        total=settings.trials,
        initial=min(_finished(study), settings.trials),
        unit="trial",
        disable=not progress,
        dynamic_ncols=True,
    )

    def refresh() -> None:
        bar.update(min(_finished(study), settings.trials) - bar.n)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
        if done:
            bar.set_postfix_str(f"best {max(t.value or 0.0 for t in done):.1f}, pruned {pruned}", refresh=True)

    try:
        if settings.jobs == 1:
            deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
            mine = worker_study(settings, 0, trials_before)
            while run_trials(mine, settings, deadline):
                refresh()
        else:
            _run_workers(settings, trials_before, refresh)
            refresh()
    finally:
        bar.close()
    return study


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run_workers(settings: TuneSettings, trials_before: int, refresh: Callable[[], None]) -> None:
    """Start ``settings.jobs`` worker processes and wait for them, refreshing the progress bar.

    Ctrl-C or SIGTERM here is passed on to the workers as SIGTERM: each checkpoints its trial,
    marks it FAIL and queues its parameters again, and exits; then the interrupt goes on.
    """
    context = multiprocessing.get_context("spawn")  # no forked copies of torch's thread pools
    workers = [context.Process(target=run_worker, args=(settings, i, trials_before)) for i in range(settings.jobs)]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            time.sleep(2.0)
            refresh()
    except BaseException:
        for w in workers:
            if w.is_alive():
                w.terminate()
        raise
    finally:
        for w in workers:
            if w.pid is not None:
                w.join()
        signal.signal(signal.SIGTERM, previous)
    failed = [w.exitcode for w in workers if w.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} of {settings.jobs} tune workers exited with status {failed}; see above")
