"""Atari 100k with DuelDQN on the CPU: train, evaluate on 100 games, compare with DER, DrQ(eps) and SPR.

Each (game, seed) trains ``ALE/<Game>-v5`` with the ``atari100k`` preset (DrQ(eps)'s recipe; until
the preset exists, the same recipe as overrides) into a fixed directory ``<runs-dir>/<Game>__s<seed>``.
A finished run (its ``summary.json`` exists) is skipped and an interrupted one resumed from its
checkpoint (exactly, on the gymnasium backend), so a long benchmark can be stopped and run again.
The table (our score beside random, DER, DrQ(eps)'s mean and 10th/50th/90th percentiles and SPR;
human-normalised scores; wall time per run; IQM with a 95% stratified-bootstrap CI when several
games and seeds are there) goes into the ``atari100k`` section of BENCHMARKS.md, labelled partial
while runs are missing.

``--curve`` also evaluates the agent every ``--curve-every`` steps on ``--curve-episodes`` games
(training pauses with ``train(stop_at=...)`` and resumes exactly, so the run is the same) and
draws ``<figures-dir>/atari100k_<game>.png`` beside DER's published curve.

    python -m benchmarks.bench_atari100k --games Breakout Boxing RoadRunner Krull --seeds 1
    python -m benchmarks.bench_atari100k --games Breakout --seeds 1 --total-steps 500 --eval-episodes 2 \\
        --runs-dir /tmp/smoke                                  # the script end to end in a minute
    python -m benchmarks.bench_atari100k --report-only         # the table from the runs already there
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from benchmarks.atari100k_stats import (
    DER_CURVE_STEPS,
    DER_CURVES,
    DRQ_EPS_IQM,
    DRQ_EPS_PERCENTILES,
    PUBLISHED,
    human_normalized,
    iqm,
    stratified_bootstrap_ci,
)
from dueldqn.checkpoint import atomic_write_json, list_checkpoints
from dueldqn.evaluate import evaluate_agent

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
    return train(env_id=f"ALE/{game}-v5", preset=PRESET, seed=seed, run_dir=run_dir, stop_at=stop_at, progress=False,
                 tensorboard=False, checkpoint_every=CHECKPOINT_EVERY, keep_checkpoints=1, **extra)  # fmt: skip


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
            points.append({"step": stop, "returns": returns, "mean": float(np.mean(returns)),
                           "eval_seconds": time.perf_counter() - start})  # fmt: skip
            atomic_write_json(curve_path, points)
            print(f"{game} seed {seed}: {stop} steps, eval {np.mean(returns):.1f} over {episodes} games", flush=True)
    result = _train(game, seed, run_dir, settings, None)
    if curve is not None:
        final = {"step": result.summary["total_steps"], "returns": result.eval.returns, "mean": result.eval.mean}
        atomic_write_json(run_dir / CURVE_FILE, [*points, final])
    print(f"{game} seed {seed}: eval {result.summary['eval_mean_return']:.1f}, "
          f"{result.summary['wall_seconds'] / 60:.1f} min", flush=True)  # fmt: skip


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
            found[game].append({
                "seed": seed, "score": summary["eval_mean_return"], "episodes": summary["eval_episodes"],
                "steps": summary["total_steps"], "wall_seconds": summary["wall_seconds"] + extra, "curve": curve,
            })  # fmt: skip
    return found


def _fmt(x: float) -> str:
    return f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"


def report(found: dict[str, list[dict[str, Any]]], wanted: int, reps: int = 50_000) -> tuple[str, str]:
    """The section's title and markdown body."""
    runs = [r for rs in found.values() for r in rs]
    steps = {r["steps"] for r in runs}
    title = "Atari 100k (DuelDQN, DrQ(eps) recipe)"
    if steps and steps != {100_000}:
        title = f"Atari 100k script, smoke run ({', '.join(map(str, sorted(steps)))} steps): not a result"
    if len(runs) < wanted:
        title += f" - partial: {len(runs)} of {wanted} runs finished"
    rows, hns_ours, hns_drq_median, passes = [], [], [], []
    for game, rs in found.items():
        random, _, der, drq, spr = PUBLISHED[game]
        p10, p50, p90 = DRQ_EPS_PERCENTILES.get(game, (float("nan"),) * 3)  # known for 13 games only
        if not rs:
            rows.append(f"| {game} | 0 | - | - | {_fmt(random)} | {_fmt(der)} | {_fmt(drq)} | "
                        f"{_fmt(p10)} / {_fmt(p50)} / {_fmt(p90)} | {_fmt(spr)} | - | - |")  # fmt: skip
            continue
        scores = [r["score"] for r in rs]
        mean = float(np.mean(scores))
        hns = float(human_normalized(game, mean))
        hns_ours.append(hns)
        verdict = "n/a"
        if game in DRQ_EPS_PERCENTILES:
            hns_drq_median.append(float(human_normalized(game, p50)))
            passes.append(bool(all(s >= p10 for s in scores)))
            verdict = "yes" if passes[-1] else "no"
        per_seed = ", ".join(_fmt(s) for s in scores)
        wall = ", ".join(f"{r['wall_seconds'] / 3600:.2f}" for r in rs)
        rows.append(f"| {game} | {len(rs)} | **{_fmt(mean)}** ({per_seed}) | {hns:.3f} | {_fmt(random)} | "
                    f"{_fmt(der)} | {_fmt(drq)} | {_fmt(p10)} / {_fmt(p50)} / {_fmt(p90)} | {_fmt(spr)} | "
                    f"{verdict} | {wall} |")  # fmt: skip
    header = ("| game | runs | ours: mean (per seed) | HNS | random | DER | DrQ(eps) | DrQ(eps) p10 / p50 / p90 "
              "| SPR | every seed >= DrQ(eps) p10 | wall time per run (h) |\n" + "|---" * 11 + "|")  # fmt: skip
    lines = [header, *rows, ""]
    if hns_ours:
        ours = float(np.mean(hns_ours))
        lines.append(f"Mean human-normalised score over the {len(hns_ours)} games run: **{ours:.3f}**.")
    if hns_drq_median and len(hns_drq_median) == len(hns_ours):
        target = float(np.mean(hns_drq_median))
        verdict = "met" if all(passes) and ours >= target else "not met"
        if len(hns_ours) < len(found):  # the goal is over all the games asked for: no verdict on some of them
            verdict = f"{verdict} so far, over {len(hns_ours)} of {len(found)} games; no verdict until all are run"
        lines[-1] += (f" DrQ(eps)'s per-game medians give {target:.3f}. Goal (every game >= DrQ(eps) p10, mean HNS "
                      f">= {target:.3f}): **{verdict}**.")  # fmt: skip
    complete = [g for g, rs in found.items() if rs]
    n_seeds = min((len(found[g]) for g in complete), default=0)
    if len(complete) >= 2 and n_seeds >= 1:
        hns_RG = np.array([[human_normalized(g, found[g][r]["score"]) for g in complete] for r in range(n_seeds)])
        point, low, high = stratified_bootstrap_ci(hns_RG, iqm, reps=reps)
        ci = (f"[95% CI {low:.3f}, {high:.3f}] (stratified bootstrap, {reps:,} replicates, rliable's method)"
              if n_seeds >= 2 else "(no confidence interval: the bootstrap resamples runs within a game, "
              "and one seed per game leaves it nothing to resample)")  # fmt: skip
        lines.append(f"\nIQM of HNS over {n_seeds} seed(s) x {len(complete)} games: **{point:.3f}** {ci}. "
                     f"DrQ(eps) over 26 games x 100 runs: {DRQ_EPS_IQM[0]:.3f} [{DRQ_EPS_IQM[1]:.3f}, "
                     f"{DRQ_EPS_IQM[2]:.3f}]; not comparable over a few chosen games.")  # fmt: skip
    lines.append("\nProtocol: 100k agent steps (400k frames), then 100 whole games at epsilon 0.001, each capped "
                 "at 27,000 steps; no sticky actions; 0-29 no-op steps at each game start; no FIRE on reset; life "
                 "loss terminal and rewards clipped for training only. Published columns: research/atari-100k.md "
                 "(rliable's score data: 100 runs each). Wall time includes the evaluation.")  # fmt: skip
    return title, "\n".join(lines)


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
        ax.axhline(PUBLISHED[game][3], color="tab:green", ls=":", label="DrQ(eps) at 100k")
        ax.axhline(PUBLISHED[game][0], color="black", lw=0.8, label="random")
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
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=sorted(PUBLISHED))
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
    parser.add_argument("--report-only", action="store_true", help="no training: the table from the runs there")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    settings = {k: v for k, v in (("total_steps", args.total_steps), ("eval_episodes", args.eval_episodes),
                                  ("backend", args.backend)) if v is not None}  # fmt: skip
    if not args.report_only:
        from dueldqn.training import TrainingInterrupted

        try:
            for seed in seeds:  # every game once before a second seed: a stopped benchmark covers more games
                for game in args.games:
                    run_one(game, seed, args.runs_dir, settings,
                            (args.curve_every, args.curve_episodes) if args.curve else None)  # fmt: skip
        except TrainingInterrupted as stopped:  # Ctrl-C or SIGTERM: the run checkpointed; the same command resumes
            print(f"{stopped}; run the same command again to go on", flush=True)
            sys.exit(130)
    found = collect(args.runs_dir, args.games, seeds)
    title, body = report(found, wanted=len(args.games) * len(seeds))
    figures = plot_curves(found, args.figures_dir)
    if figures:
        body += "\n\nLearning curves: " + ", ".join(f"`{p.name}`" for p in figures) + f" in `{args.figures_dir}`."
    print(f"## {title}\n\n{body}")
    if not args.no_write:
        write_section("atari100k", title, body)


if __name__ == "__main__":
    main()
