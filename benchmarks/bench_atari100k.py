"""Atari 100k with DuelDQN on the CPU: train and evaluate runs; the campaign's report from its raw results.

Training: each (game, seed) trains ``ALE/<Game>-v5`` with the ``atari100k`` preset (DrQ(eps)'s recipe)
into a fixed directory ``<runs-dir>/<Game>__s<seed>``. A finished run (its ``summary.json`` exists) is
skipped and an interrupted one resumed from its checkpoint (exactly, on the gymnasium backend), so a long
benchmark can be stopped and run again. ``--curve`` also evaluates the agent every ``--curve-every``
steps on ``--curve-episodes`` games (training pauses with ``train(stop_at=...)`` and resumes exactly, so
the run is the same) and draws ``<figures-dir>/atari100k_<game>.png`` beside DER's published curve. The
campaign (``benchmarks/atari100k_campaign.py``) runs this code for its fixed plan of runs.

The report (``--report-only``) reads only the result files ``<Game>-s<seed>.json`` that the campaign writes
(``--results-dir``, by default ``benchmarks/results/atari100k``) and recomputes every figure from their raw
evaluation returns and the reference runs of ``dueldqn.atari100k`` (rliable's data: 100 runs per game of
DER, DrQ(eps) and SPR): per game our seeds' scores, mean +- std and human-normalised score (HNS) beside
DrQ(eps)'s percentiles; IQM, median and mean HNS with 95% stratified-bootstrap intervals for us and for
DER, DrQ(eps) and SPR on the same games; P(ours > DrQ(eps)); the goal's verdict (labelled "so far" while
runs of the plan are missing); and the runs' wall times, grouped by how runs shared the machine, with the
45-minute goal judged only on runs that had it alone. It writes the ``atari100k`` section of BENCHMARKS.md
and ``<figures-dir>/atari100k_campaign.png``.

    python -m benchmarks.bench_atari100k --games Breakout --seeds 1 --total-steps 500 --eval-episodes 2 \\
        --runs-dir /tmp/smoke                                  # the training script end to end in a minute
    python -m benchmarks.atari100k_campaign                    # the campaign's runs, resumable
    python -m benchmarks.bench_atari100k --report-only         # the report from the result files
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_readme_block, write_section
from benchmarks.atari100k_campaign import CORE_GAMES, SEEDS, result_name
from dueldqn.aggregates import Estimate, improvement_K, iqm_K, mean_K, median_K, stratified_bootstrap_ci
from dueldqn.atari100k import AGENTS, human_normalized, random_score, reference_runs
from dueldqn.atari100k import GAMES as ALL_GAMES
from dueldqn.checkpoint import list_checkpoints
from dueldqn.evaluate import evaluate_agent
from dueldqn.files import atomic_write, atomic_write_json

GAMES = ("Breakout", "Boxing", "RoadRunner", "Krull")
PRESET = "atari100k"
TOTAL_STEPS = 100_000  # the protocol: 100k agent steps (400k frames)
CHECKPOINT_EVERY = 10_000  # a long benchmark loses at most this much when it is stopped (replay included)
CURVE_FILE = "curve.json"


def run_dir_of(runs_dir: Path, game: str, seed: int) -> Path:
    """Where the run of ``game`` with ``seed`` lives."""
    return runs_dir / f"{game}__s{seed}"


def _train(game: str, seed: int, run_dir: Path, settings: dict[str, Any], stop_at: int | None) -> Any:
    """Start the run, or resume it from its newest checkpoint; pause at ``stop_at`` if given."""
    from dueldqn.training import train

    if list_checkpoints(run_dir) if run_dir.exists() else []:
        return train(resume=run_dir, stop_at=stop_at, progress=False, tensorboard=False)
    if run_dir.exists():  # killed before its first checkpoint: nothing to resume
        print(f"{run_dir} has no checkpoint; starting it again", flush=True)
        shutil.rmtree(run_dir)
    extra = {k: v for k, v in settings.items() if k in ("total_steps", "eval_episodes", "backend", "torch_threads")}
    return train(
        env_id=f"ALE/{game}-v5",
        preset=PRESET,
        seed=seed,
        run_dir=run_dir,
        stop_at=stop_at,
        progress=False,
        tensorboard=False,
        checkpoint_every=CHECKPOINT_EVERY,
        keep_checkpoints=1,
        **extra,
    )


def run_one(game: str, seed: int, runs_dir: Path, settings: dict[str, Any], curve: tuple[int, int] | None) -> None:
    """Train and evaluate one (game, seed), or finish it; with ``curve=(every, episodes)`` evaluate along the way."""
    run_dir = run_dir_of(runs_dir, game, seed)
    if (run_dir / "summary.json").exists():
        print(f"{game} seed {seed}: finished before, skipped", flush=True)
        return
    total = int(settings.get("total_steps", TOTAL_STEPS))
    points: list[dict[str, Any]] = []
    if curve is not None:
        every, episodes = curve
        curve_path = run_dir / CURVE_FILE
        points = json.loads(curve_path.read_text()) if curve_path.exists() else []
        for stop in range(every, total, every):
            if any(p["step"] == stop for p in points):
                continue
            result = _train(game, seed, run_dir, settings, stop)
            start = time.perf_counter()
            config = json.loads((run_dir / "config.json").read_text())
            seed_k, epsilon = config["seed"] + 20_000 + stop, config["eval_epsilon"]
            result_k = evaluate_agent(config["env_id"], result.agent, episodes=episodes, seed=seed_k, epsilon=epsilon)
            returns = result_k.returns
            points.append(
                {
                    "step": stop,
                    "returns": returns,
                    "mean": float(np.mean(returns)),
                    "eval_seconds": time.perf_counter() - start,
                }
            )
            atomic_write_json(curve_path, points)
            print(f"{game} seed {seed}: {stop} steps, eval {np.mean(returns):.1f} over {episodes} games", flush=True)
    result = _train(game, seed, run_dir, settings, None)
    if curve is not None:
        final = {"step": result.summary["total_steps"], "returns": result.eval.returns, "mean": result.eval.mean}
        atomic_write_json(run_dir / CURVE_FILE, [*points, final])
    print(
        f"{game} seed {seed}: eval {result.summary['eval_mean_return']:.1f}, "
        f"{result.summary['wall_seconds'] / 60:.1f} min",
        flush=True,
    )


def collect(runs_dir: Path, games: list[str], seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Each game's finished runs: seed, score (mean return over the evaluation games), steps, wall time."""
    found: dict[str, list[dict[str, Any]]] = {}
    for game in games:
        found[game] = []
        for seed in seeds:
            run_dir = run_dir_of(runs_dir, game, seed)
            if not (run_dir / "summary.json").exists():
                continue
            summary = json.loads((run_dir / "summary.json").read_text())
            curve_path = run_dir / CURVE_FILE
            curve = json.loads(curve_path.read_text()) if curve_path.exists() else []
            extra = sum(p.get("eval_seconds", 0.0) for p in curve)
            found[game].append(
                {
                    "seed": seed,
                    "score": summary["eval_mean_return"],
                    "episodes": summary["eval_episodes"],
                    "steps": summary["total_steps"],
                    "wall_seconds": summary["wall_seconds"] + extra,
                    "curve": curve,
                }
            )
    return found


# DER's mean evaluation score during training (100 runs), from rliable's DER/<Game>.json as read by the research
# note (research/atari-100k.md, section 1.5; RLE-Foundation/rllte@ddd76d5 hsuanwu/evaluation/atari_100k/DER/):
# only the --curve figures use it.
DER_CURVE_STEPS = (10_000, 20_000, 30_000, 50_000, 70_000, 100_000)
DER_CURVES: dict[str, tuple[float, ...]] = {
    "Breakout": (2.3, 2.7, 3.9, 6.6, 7.8, 9.2),
    "Pong": (-20.9, -20.6, -20.3, -18.6, -15.5, -9.7),
    "Boxing": (-11.5, -5.1, -3.1, -1.6, -1.5, -0.3),
    "Freeway": (12.9, 7.0, 8.5, 15.0, 17.3, 20.9),
    "Krull": (2058, 2955, 3186, 3240, 3231, 3257),
    "KungFuMaster": (157.9, 438.1, 869.8, 2482, 4890, 6580),
    "RoadRunner": (690.8, 958.9, 1833, 5429, 9152, 11843),
    "Kangaroo": (52.3, 53.6, 84.3, 155.0, 282.8, 581.7),
    "Seaquest": (112.0, 166.5, 226.5, 260.1, 288.0, 304.6),
    "MsPacman": (722.8, 877.2, 917.1, 1026, 1113, 1187),
    "Qbert": (339.2, 450.5, 538.4, 687.1, 1012, 1774),
    "CrazyClimber": (1115, 6828, 18194, 30235, 34845, 34509),
}

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "atari100k"
FIGURE_NAME = "atari100k_campaign.png"
REPS = 50_000  # bootstrap replicates, as rliable
BOOTSTRAP_SEED = 0
GOAL_MINUTES = 45.0  # one run, training and its 100 evaluation games, on 2 quiet cores
PERCENTILES = (10, 25, 50, 90)  # DrQ(eps)'s, per game; the goal asks each game's mean over seeds >= its p25
OURS = "DuelDQN (ours)"


@dataclass(frozen=True)
class RunResult:
    """One finished run of the campaign, as its result file ``<Game>-s<seed>.json`` holds it."""

    game: str
    seed: int
    returns: tuple[float, ...]  # the evaluation games' raw scores, in game order
    env_steps: int
    updates: int
    train_seconds: float | None
    eval_seconds: float | None
    cpu_model: str
    torch_threads: int
    runs_at_once: int
    contended: str
    commits: tuple[str, ...]

    @property
    def score(self) -> float:
        """The run's score: the mean of its evaluation games."""
        return float(np.mean(self.returns))

    @property
    def wall_minutes(self) -> float:
        """Training and evaluation, in minutes (what the 45-minute goal counts)."""
        return ((self.train_seconds or 0.0) + (self.eval_seconds or 0.0)) / 60


def _field(data: dict[str, Any], key: str, kinds: tuple[type, ...], path: Path) -> Any:
    value = data.get(key)
    if key not in data or isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(f"{path}: field {key!r} must be {names}, got {value!r}")
    return value


def load_result(path: Path) -> RunResult:
    """One result file, checked: the fields the report uses, its name, and its mean against its returns."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON result file ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (a campaign result), got {type(data).__name__}")
    game = _field(data, "game", (str,), path)
    if game not in ALL_GAMES:
        raise ValueError(f"{path}: game {game!r} is not an Atari 100k game; expected one of {list(ALL_GAMES)}")
    seed = _field(data, "seed", (int,), path)
    if path.name != result_name(game, seed):
        raise ValueError(f"{path}: holds {game} seed {seed}, so it must be named {result_name(game, seed)}")
    returns = _field(data, "returns", (list,), path)
    if not returns or not all(isinstance(r, (int, float)) and math.isfinite(r) for r in returns):
        raise ValueError(f"{path}: field 'returns' must be a non-empty list of finite numbers (the evaluation games)")
    mean = _field(data, "mean_return", (int, float), path)
    if abs(mean - float(np.mean(returns))) > 1e-6 * max(1.0, abs(mean)):
        raise ValueError(f"{path}: mean_return {mean} is not the mean of its returns ({np.mean(returns)})")
    commits = _field(data, "commits", (list,), path)
    return RunResult(
        game=game,
        seed=seed,
        returns=tuple(float(r) for r in returns),
        env_steps=_field(data, "env_steps", (int,), path),
        updates=_field(data, "updates", (int,), path),
        train_seconds=_field(data, "train_seconds", (int, float, type(None)), path),
        eval_seconds=_field(data, "eval_seconds", (int, float, type(None)), path),
        cpu_model=_field(data, "cpu_model", (str,), path),
        torch_threads=_field(data, "torch_threads", (int,), path),
        runs_at_once=_field(data, "runs_at_once", (int,), path),
        contended=_field(data, "contended", (str,), path),
        commits=tuple(str(c) for c in commits),
    )


def load_results(results_dir: Path) -> list[RunResult]:
    """Every ``*.json`` result file in ``results_dir``, in name order."""
    if not results_dir.is_dir():
        raise ValueError(
            f"results directory {results_dir} does not exist; expected the folder of the campaign's "
            "<Game>-s<seed>.json files (--results-dir)"
        )
    return [load_result(path) for path in sorted(results_dir.glob("*.json"))]


@dataclass(frozen=True)
class Campaign:
    """Everything the report and its figure show, computed once from the result files."""

    games: list[str]  # the plan's six games, then any other game with results, in the plan's order
    runs: dict[str, list[RunResult]]  # game -> its finished runs, by seed
    aggregate_games: list[str]  # the games the aggregates cover: those with runs (the six while none has)
    aggregates: dict[str, dict[str, Estimate]]  # agent -> IQM / median / mean of HNS on aggregate_games
    improvement: Estimate | None  # P(ours > DrQ(eps)) on aggregate_games
    verdict_iqm: tuple[Estimate, Estimate] | None  # ours, DrQ(eps): IQM on the plan's six games with runs
    reps: int


def _hns_runs(game: str, scores: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(human_normalized(game, np.asarray(scores, dtype=np.float64)))


def _aggregates(runs_G: list[np.ndarray], reps: int) -> dict[str, Estimate]:
    return {
        name: stratified_bootstrap_ci(stat, runs_G, reps=reps, seed=BOOTSTRAP_SEED)
        for name, stat in (("IQM", iqm_K), ("median", median_K), ("mean", mean_K))
    }


def summarize(results: list[RunResult], reps: int = REPS) -> Campaign:
    """Per game runs and the aggregate HNS statistics of ours and the reference agents on the same games."""
    runs: dict[str, list[RunResult]] = {}
    for r in sorted(results, key=lambda r: (r.game, r.seed)):
        runs.setdefault(r.game, []).append(r)
    games = list(CORE_GAMES) + [g for g in ALL_GAMES if g in runs and g not in CORE_GAMES]
    runs = {g: runs.get(g, []) for g in games}
    played = [g for g in games if runs[g]]
    aggregate_games = played or list(CORE_GAMES)
    aggregates = {
        agent: _aggregates([_hns_runs(g, reference_runs(agent, g)) for g in aggregate_games], reps) for agent in AGENTS
    }
    improvement, verdict_iqm = None, None
    if played:
        ours_G = [_hns_runs(g, [r.score for r in runs[g]]) for g in played]
        aggregates = {OURS: _aggregates(ours_G, reps), **aggregates}
        drq_G = [_hns_runs(g, reference_runs("DrQ(eps)", g)) for g in played]
        improvement = stratified_bootstrap_ci(improvement_K, ours_G, drq_G, reps=reps, seed=BOOTSTRAP_SEED)
        core = [g for g in played if g in CORE_GAMES]
        if core == played:
            verdict_iqm = (aggregates[OURS]["IQM"], aggregates["DrQ(eps)"]["IQM"])
        elif core:  # other games ran too: the goal is judged on the plan's six
            ours_core = [_hns_runs(g, [r.score for r in runs[g]]) for g in core]
            drq_core = [_hns_runs(g, reference_runs("DrQ(eps)", g)) for g in core]
            verdict_iqm = (
                stratified_bootstrap_ci(iqm_K, ours_core, reps=reps, seed=BOOTSTRAP_SEED),
                stratified_bootstrap_ci(iqm_K, drq_core, reps=reps, seed=BOOTSTRAP_SEED),
            )
    return Campaign(games, runs, aggregate_games, aggregates, improvement, verdict_iqm, reps)


def _fmt(x: float) -> str:
    return f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"


def _ci(e: Estimate) -> str:
    return f"{e.point:.3f} [{e.low:.3f}, {e.high:.3f}]"


def _drq_percentiles(game: str) -> np.ndarray:
    return np.percentile(reference_runs("DrQ(eps)", game), PERCENTILES)


def _compare(ours: Estimate, drq: Estimate, runs_per_game: Sequence[int]) -> str:
    """What the two intervals show, and no more: with one run per game ours has no interval to compare."""
    if all(n == 1 for n in runs_per_game):
        return "with one run per game ours has no interval, so nothing separates the two yet"
    caveat = (
        f" (some games have fewer than the plan's {len(SEEDS)} runs, so our interval is narrower than it will be: "
        "not a finding yet)"
        if min(runs_per_game) < len(SEEDS)
        else ""
    )
    if ours.low > drq.high:
        return "ours lies above DrQ(eps)'s interval" + caveat
    if ours.high < drq.low:
        return "ours lies below DrQ(eps)'s interval" + caveat
    return "the intervals overlap, so these runs do not separate the two" + caveat


@dataclass(frozen=True)
class Goal:
    """Issue 21's goal on the plan's games with runs: our IQM >= DrQ(eps)'s, each game's mean >= its p25."""

    ours: Estimate  # IQM of HNS over our runs of the plan's games
    drq: Estimate  # DrQ(eps)'s IQM on the same games
    games: list[str]  # the plan's games with at least one run
    below: list[str]  # of those, the games whose mean over seeds is under DrQ(eps)'s 25th percentile
    done: int  # the plan's runs finished
    planned: int

    @property
    def met(self) -> bool:
        return self.ours.point >= self.drq.point and not self.below

    def verdict(self) -> str:
        """'met' or 'not met', with 'so far, on ...' while runs of the plan are missing."""
        verdict = "met" if self.met else "not met"
        if self.done < self.planned:
            verdict += (
                f" so far, on {self.done} of the {self.planned} planned runs "
                f"({len(self.games)} of {len(CORE_GAMES)} games)"
            )
        return verdict


def goal(campaign: Campaign) -> Goal | None:
    """The goal's figures, or None while no run of the plan's games has finished."""
    if campaign.verdict_iqm is None:
        return None
    games = [g for g in CORE_GAMES if campaign.runs[g]]
    below = [g for g in games if np.mean([r.score for r in campaign.runs[g]]) < _drq_percentiles(g)[1]]
    done = sum(1 for g in CORE_GAMES for r in campaign.runs[g] if r.seed in SEEDS)
    return Goal(*campaign.verdict_iqm, games, below, done, len(CORE_GAMES) * len(SEEDS))


def _throughput(timed: list[RunResult]) -> list[str]:
    """Each run's wall time (training and its 100 games) by how the runs shared the machine, against the goal.

    The goal is one run alone on 2 quiet cores. A run beside others is not that: its own wall time is longer,
    while the machine finishes a run every ``wall / runs_at_once`` minutes. So the verdict reads only runs
    that had the machine alone; the others are shown, labelled, and never judged against the goal.
    """
    if not timed:
        return []
    lines = [
        f"\nThroughput (goal: one run, training and its 100 games, in at most {GOAL_MINUTES:.0f} min on 2 quiet "
        "cores). Machine time per run is a run's own wall time divided by the runs sharing the machine:",
        "",
        "| runs at once | torch threads each | runs | own wall time per run, median (range), min "
        "| machine time per run, median, min | updates/s, median |",
        "|---|---|---|---|---|---|",
    ]
    for at_once, threads in sorted({(r.runs_at_once, r.torch_threads) for r in timed}):
        group = [r for r in timed if (r.runs_at_once, r.torch_threads) == (at_once, threads)]
        walls = np.array([r.wall_minutes for r in group])
        rates = [r.updates / r.train_seconds for r in group if r.train_seconds]
        lines.append(
            f"| {at_once} | {threads} | {len(group)} | {np.median(walls):.1f} ({walls.min():.1f}-{walls.max():.1f}) "
            f"| {np.median(walls) / at_once:.1f} | {np.median(rates):.1f} |"
        )
    alone = np.array([r.wall_minutes for r in timed if r.runs_at_once == 1])
    if alone.size:
        median = float(np.median(alone))
        side = "over" if median > GOAL_MINUTES else "within"
        verdict = (
            f"the median run alone took **{median:.1f} min** ({alone.size} run(s)), {abs(median - GOAL_MINUTES):.1f} "
            f"min {side} the goal"
        )
    else:
        verdict = "no run has had the machine alone yet, so the goal is not judged"
    cpus = "; ".join(
        f"{cpu} ({sum(r.cpu_model == cpu for r in timed)} runs)" for cpu in sorted({r.cpu_model for r in timed})
    )
    labels = " ".join(sorted({r.contended.rstrip(".") + "." for r in timed}))
    lines.append(f"\nOn the goal, {verdict}. CPU: {cpus}. How the runs shared the machine: {labels}")
    return lines


def report(campaign: Campaign) -> tuple[str, str]:
    """The section's title and markdown body."""
    runs = [r for rs in campaign.runs.values() for r in rs]
    planned = len(CORE_GAMES) * len(SEEDS)
    done = sum(1 for r in runs if r.game in CORE_GAMES and r.seed in SEEDS)
    title = "Atari 100k campaign (DuelDQN, DrQ(eps) recipe)"
    protocol = {(r.env_steps, len(r.returns)) for r in runs}
    if protocol and protocol != {(100_000, 100)}:
        shown = ", ".join(f"{steps} steps and {games} games" for steps, games in sorted(protocol))
        title = f"Atari 100k campaign, smoke runs ({shown}): not a result"
    if done < planned:
        title += f" - partial: {done} of {planned} planned runs finished"
    rows = []
    for game in campaign.games:
        rs = campaign.runs[game]
        p = _drq_percentiles(game)
        drq_mean = _fmt(float(reference_runs("DrQ(eps)", game).mean()))
        der, spr = (_fmt(float(reference_runs(a, game).mean())) for a in ("DER", "SPR"))
        reference = f"{' / '.join(_fmt(x) for x in p)} | {drq_mean} | {der} / {spr}"
        if not rs:
            rows.append(f"| {game} | 0 | - | - | - | {reference} | - |")
            continue
        scores = [r.score for r in rs]
        mean = float(np.mean(scores))
        spread = f" +- {_fmt(float(np.std(scores, ddof=1)))}" if len(scores) > 1 else ""
        per_seed = ", ".join(f"s{r.seed} {_fmt(r.score)}" for r in rs)
        passes = "yes" if mean >= p[1] else "**no**"
        rows.append(
            f"| {game} | {len(rs)} | {per_seed} | **{_fmt(mean)}**{spread} | "
            f"{float(human_normalized(game, mean)):.3f} | {reference} | {passes} |"
        )
    lines = [
        "| game | runs | ours per seed (mean of 100 games) | mean +- std over seeds | HNS | "
        "DrQ(eps) p10 / p25 / p50 / p90 | DrQ(eps) mean | DER / SPR mean | mean >= DrQ(eps) p25 |",
        "|---" * 9 + "|",
        *rows,
        "",
    ]
    n_games = len(campaign.aggregate_games)
    where = f"the {n_games} games with runs" if runs else f"the plan's {n_games} games (no run has finished yet)"
    lines += [
        f"Human-normalised scores on {where}, 95% stratified-bootstrap intervals:",
        "",
        "| agent | runs per game | IQM | median | mean |",
        "|---|---|---|---|---|",
    ]
    for agent, stats in campaign.aggregates.items():
        per_game = ", ".join(str(len(campaign.runs[g])) for g in campaign.aggregate_games) if agent == OURS else "100"
        lines.append(f"| {agent} | {per_game} | {_ci(stats['IQM'])} | {_ci(stats['median'])} | {_ci(stats['mean'])} |")
    lines.append("")
    if campaign.improvement is not None:
        lines.append(
            f"Probability of improvement P(ours > DrQ(eps)) on the same games: **{_ci(campaign.improvement)}** "
            "(per game, the chance that a run of ours scores above a run of DrQ(eps), ties half, averaged "
            "over games)."
        )
    counts = {len(campaign.runs[g]) for g in campaign.aggregate_games if campaign.runs[g]}
    if counts == {1}:
        lines.append("One run per game: the bootstrap has nothing of ours to resample, so our intervals are points.")
    elif len(counts) > 1:
        lines.append(
            "Our games have different numbers of runs, so our IQM weighs every game the same (a run of game g "
            "weighs 1 / (games x runs of g), a quarter of the weight cut at each end: `dueldqn.aggregates.iqm_K`); "
            "rliable's plain cut, which would weigh a game by its runs, applies once every game has as many."
        )
    target = goal(campaign)
    if target is not None:
        ours, drq = target.ours, target.drq
        why = [f"IQM {ours.point:.3f} {'>=' if ours.point >= drq.point else '<'} {drq.point:.3f}"]
        why.append(
            "every game's mean >= DrQ(eps) p25"
            if not target.below
            else "below DrQ(eps) p25: " + ", ".join(target.below)
        )
        compare = _compare(ours, drq, [len(campaign.runs[g]) for g in target.games])
        lines.append(
            f"\nGoal (our IQM >= DrQ(eps)'s on the same games, and each game's mean over seeds >= DrQ(eps)'s "
            f"25th percentile): **{target.verdict()}** ({'; '.join(why)}). On the plan's games: IQM {_ci(ours)} "
            f"against DrQ(eps)'s {_ci(drq)} on the same {len(target.games)} games: {compare}."
        )
    lines += _throughput([r for r in runs if r.train_seconds is not None and r.eval_seconds is not None])
    commits = sorted({c for r in runs for c in r.commits})
    lines.append(
        f"\nRead from {len(runs)} result file(s) `<Game>-s<seed>.json` (raw returns of 100 evaluation games per run"
        + (f"; project commits {', '.join(c[:12] for c in commits)}" if commits else "")
        + "). Reference runs: rliable's Atari 100k data, 100 runs per game (`dueldqn/data/atari100k`, sources named "
        f"there). Bootstrap: {campaign.reps:,} replicates, seed {BOOTSTRAP_SEED}. Protocol: 100k agent steps (400k "
        "frames), then 100 whole games at epsilon 0.001, each capped at 27,000 steps; no sticky actions; 0-29 no-op "
        "steps at each game start; life loss terminal and rewards clipped for training only. std over seeds with "
        "ddof 1; HNS of the mean over seeds."
    )
    return title, re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def readme_summary(campaign: Campaign) -> str:
    """README's Atari 100k paragraph: the plan, how far it got, each game against DrQ(eps), and what the
    intervals show, in words that claim no more than they do. Written by ``--report-only`` like the section."""
    planned = len(CORE_GAMES) * len(SEEDS)
    target = goal(campaign)
    done = target.done if target else 0
    progress = (
        f"**All {planned} runs have finished.**"
        if done >= planned
        else f'**Partial: {done} of {planned} runs have finished**, so the verdict below reads "so far".'
    )
    blocks = [
        _wrap(
            "Atari 100k (100k agent steps, then 100 games at epsilon 0.001): the spec's DuelDQN with DrQ(eps)'s "
            f"recipe, in the campaign of issue 21, fixed before any result: seeds {', '.join(map(str, SEEDS))} of "
            f"{', '.join(CORE_GAMES[:-1])} and {CORE_GAMES[-1]}, then the other games alphabetically. {progress}"
        )
    ]
    if target is not None:
        rows = [
            "| game | ours: each seed (mean of 100 games) | mean over seeds | DrQ(eps) p25 / median | mean >= p25 |",
            "|---|---|---|---|---|",
        ]
        for game in target.games:
            rs = campaign.runs[game]
            p = _drq_percentiles(game)
            rows.append(
                f"| {game} | {', '.join(f's{r.seed} {_fmt(r.score)}' for r in rs)} | "
                f"{_fmt(float(np.mean([r.score for r in rs])))} | {_fmt(p[1])} / {_fmt(p[2])} | "
                f"{'no' if game in target.below else 'yes'} |"
            )
        runs_per_game = [len(campaign.runs[g]) for g in target.games]
        compare = _compare(target.ours, target.drq, runs_per_game)
        ours = f"{target.ours.point:.3f}" if max(runs_per_game) == 1 else _ci(target.ours)
        improvement = (
            f" P(ours > DrQ(eps)) {_ci(campaign.improvement)}."
            if campaign.improvement is not None and campaign.aggregate_games == target.games
            else ""
        )
        blocks += [
            "\n".join(rows),
            _wrap(
                f"IQM of human-normalised scores, 95% stratified-bootstrap intervals: ours {ours} "
                f"against DrQ(eps)'s {_ci(target.drq)} on the same {len(target.games)} games; {compare}."
                f"{improvement} The goal (our IQM at or above DrQ(eps)'s, each game's mean at or above DrQ(eps)'s "
                f"25th percentile) is **{target.verdict()}**."
            ),
        ]
    blocks.append(
        _wrap(
            "`python -m benchmarks.bench_atari100k --report-only` recomputes every figure from the raw returns in "
            "`benchmarks/results/atari100k/` and rliable's per-run data of DER, DrQ(eps) and SPR "
            "(`dueldqn/data/atari100k`, sources named there), and writes this paragraph. BENCHMARKS.md has the "
            "whole report (median and mean, DER and SPR, wall times) and an earlier sitting's one-seed table, "
            "superseded. The figure shows DrQ(eps)'s 100 runs per game with our seeds as points, and the IQM "
            "intervals:"
        )
    )
    return "\n\n".join(blocks)


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=110, break_on_hyphens=False, break_long_words=False)


def plot_campaign(campaign: Campaign, path: Path) -> Path:
    """Per game DrQ(eps)'s 100 runs as a distribution with our seeds as points; the aggregate IQMs with intervals."""
    from matplotlib.figure import Figure  # off-screen, without pyplot

    games = campaign.games
    cols = min(6, len(games))
    rows = math.ceil(len(games) / cols)
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows + 2.6))
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [1.1], hspace=0.6, wspace=0.45)
    for i, game in enumerate(games):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        drq = reference_runs("DrQ(eps)", game)
        ax.violinplot(drq, positions=[0], showmedians=True, showextrema=False)
        ax.axhline(float(np.percentile(drq, 25)), color="grey", ls="--", lw=0.8)
        seeds = [r.score for r in campaign.runs[game]]
        if seeds:
            ax.plot(np.linspace(-0.1, 0.1, len(seeds)) if len(seeds) > 1 else [0.0], seeds, "o", color="tab:red")
        ax.set_xticks([])
        ax.set_title(game, fontsize=9)
        ax.tick_params(labelsize=7)
    ax = fig.add_subplot(grid[rows, :])
    agents = list(campaign.aggregates)
    for y, agent in enumerate(agents):
        e = campaign.aggregates[agent]["IQM"]
        ax.errorbar(
            [e.point],
            [y],
            xerr=[[e.point - e.low], [e.high - e.point]],
            fmt="o",
            capsize=4,
            color="tab:red" if agent == OURS else "tab:blue",
        )
    ax.set_yticks(range(len(agents)), agents, fontsize=8)
    ax.set_xlabel(
        f"IQM of human-normalised scores on {len(campaign.aggregate_games)} games, 95% stratified-bootstrap CI"
    )
    fig.suptitle("Atari 100k: DrQ(eps)'s 100 runs per game (violins, dashed: p25) and our seeds (red)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90, bbox_inches="tight"))
    return path


def plot_curves(found: dict[str, list[dict[str, Any]]], figures_dir: Path) -> list[Path]:
    """One PNG per game with an evaluation curve: our seeds' curves beside DER's published mean curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for game, rs in found.items():
        curves = [r["curve"] for r in rs if r["curve"]]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rs:
            if r["curve"]:
                steps, means = [p["step"] for p in r["curve"]], [p["mean"] for p in r["curve"]]
                ax.plot(steps, means, "o-", label=f"DuelDQN s{r['seed']}")
        if game in DER_CURVES:
            ax.plot(DER_CURVE_STEPS, DER_CURVES[game], "s--", color="grey", label="DER (mean of 100 runs)")
        ax.axhline(float(reference_runs("DrQ(eps)", game).mean()), color="tab:green", ls=":", label="DrQ(eps) at 100k")
        ax.axhline(random_score(game), color="black", lw=0.8, label="random")
        ax.set(xlabel="agent steps", ylabel="mean game score", title=f"{game}: Atari 100k")
        ax.legend(fontsize=8)
        figures_dir.mkdir(parents=True, exist_ok=True)
        path = figures_dir / f"atari100k_{game}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=sorted(ALL_GAMES))
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (with --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/atari100k"))
    parser.add_argument("--total-steps", type=int, help="fewer steps for a smoke test (the protocol: 100,000)")
    parser.add_argument("--eval-episodes", type=int, help="fewer evaluation games for a smoke test (protocol: 100)")
    parser.add_argument("--backend", choices=("gymnasium", "envpool"), help="envpool resumes with new games")
    parser.add_argument("--curve", action="store_true", help="evaluate along the way and draw learning curves")
    parser.add_argument("--curve-every", type=int, default=10_000)
    parser.add_argument("--curve-episodes", type=int, default=10)
    parser.add_argument("--figures-dir", type=Path, default=Path(__file__).resolve().parent / "figures")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="no training: the campaign's report from the result files in --results-dir",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the report reads the <Game>-s<seed>.json result files (and nothing else)",
    )
    parser.add_argument("--reps", type=int, default=REPS, help="bootstrap replicates of the report (rliable: 50,000)")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.report_only:
        try:
            campaign = summarize(load_results(args.results_dir), reps=args.reps)
        except ValueError as error:
            parser.error(str(error))
        title, body = report(campaign)
        figure = plot_campaign(campaign, args.figures_dir / FIGURE_NAME).resolve()
        root = Path(__file__).resolve().parent.parent
        body += f"\n\nFigure: `{figure.relative_to(root) if figure.is_relative_to(root) else figure}`."
        print(f"## {title}\n\n{body}")
        if not args.no_write:
            write_section("atari100k", title, body)
            write_readme_block("atari100k", readme_summary(campaign))
        return
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    settings = {
        k: v
        for k, v in (
            ("total_steps", args.total_steps),
            ("eval_episodes", args.eval_episodes),
            ("backend", args.backend),
        )
        if v is not None
    }
    from dueldqn.errors import TrainingInterrupted

    try:
        for seed in seeds:  # every game once before a second seed: a stopped benchmark covers more games
            for game in args.games:
                run_one(
                    game, seed, args.runs_dir, settings, (args.curve_every, args.curve_episodes) if args.curve else None
                )
    except TrainingInterrupted as stopped:  # Ctrl-C or SIGTERM: the run checkpointed; the same command resumes
        print(f"{stopped}; run the same command again to go on", flush=True)
        sys.exit(130)
    found = collect(args.runs_dir, args.games, seeds)
    for game, rs in found.items():
        for r in rs:
            print(f"{game} seed {r['seed']}: {r['score']:.1f} over {r['episodes']} games, {r['steps']} steps")
    figures = plot_curves(found, args.figures_dir)
    if figures:
        print("Learning curves: " + ", ".join(str(p) for p in figures))
    print(
        "The report reads only the campaign's result files: python -m benchmarks.atari100k_campaign writes them, "
        "python -m benchmarks.bench_atari100k --report-only reads them."
    )


if __name__ == "__main__":
    main()
