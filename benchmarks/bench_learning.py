"""Learning results of the tuned presets on classic control and toy text: greedy return of the final network.

Each preset is trained once per seed, one run at a time (a run uses one core; a second run would
slow the first), without a progress bar or TensorBoard, in a temporary run directory. A run is
judged by its final evaluation: the greedy policy of the network at the end of training (no
best checkpoint), over ``eval_episodes`` episodes on a separate env. The tables, with each
preset's threshold and the machine's load average, go into the ``learning`` section of
BENCHMARKS.md.

    python -m benchmarks.bench_learning                        # all tuned presets, default seeds
    python -m benchmarks.bench_learning --presets cartpole --seeds 5 --first-seed 5 --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from dueldqn.config import PRESETS, resolve_config
from dueldqn.training import train


@dataclass(frozen=True)
class Target:
    """What a preset must reach: the eval mean return of every seed, and optionally a median wall time."""

    threshold: float
    seeds: int  # default number of seeds (0, 1, ...)
    median_wall_s: float | None = None


TARGETS = {
    "cartpole": Target(threshold=475.0, seeds=5, median_wall_s=15.0),
    "cartpole-sarsa": Target(threshold=475.0, seeds=3),
    "mountaincar": Target(threshold=-110.0, seeds=3),
    "acrobot": Target(threshold=-85.0, seeds=3),
    # Slippery FrozenLake's best policy succeeds in ~74-77% of 1,000 episodes (value iteration on
    # the env's model, evaluated on the eval seeds 10,000-10,002): 0.70 is near-optimal play.
    "frozenlake": Target(threshold=0.70, seeds=3),
    # Taxi's best policy averages 7.86-7.91 over those 1,000-episode evaluations, short of
    # gymnasium's reward_threshold of 8; 7.5 is within half a step per episode of it.
    "taxi": Target(threshold=7.5, seeds=3),
}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _num(value: float) -> str:
    """A return with one decimal, or three below 10 (FrozenLake's success rate 0.737 is not 0.7)."""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def run_preset(preset: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Train ``preset`` at each seed in turn; one summary per seed, with the load average after the run."""
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{preset}-") as tmp:
        for seed in seeds:
            config = resolve_config(preset=preset, overrides={"seed": seed})
            summary = train(config, run_dir=Path(tmp) / f"s{seed}", progress=False, tensorboard=False).summary
            summary["load"] = os.getloadavg()[0]
            rows.append(summary)
            print(
                f"{preset} seed {seed}: eval {_num(summary['eval_mean_return'])} "
                f"+- {_num(summary['eval_std_return'])}, "
                f"{summary['wall_seconds']:.1f} s, {summary['steps_per_second']:.0f} steps/s, "
                f"load {summary['load']:.2f}",
                flush=True,
            )
    return rows


def preset_settings(preset: str) -> str:
    """The preset's fields as ``name=value`` pairs (what it changes from the Config defaults)."""
    return ", ".join(f"{name}={value}" for name, value in PRESETS[preset].items())


def preset_table(preset: str, rows: list[dict[str, Any]]) -> str:
    """One preset's markdown: settings, a row per seed, then solved count and median wall time."""
    target = TARGETS[preset]
    lines = [
        f"### `{preset}` ({rows[0]['env_id']}, {rows[0]['algo']})",
        "",
        f"Settings: {preset_settings(preset)}",
        "",
        f"| seed | eval return (mean +- std, {rows[0]['eval_episodes']} greedy episodes) "
        f"| solved (>= {target.threshold:g}) | wall s | steps/s | updates | load (1 min) |",
        "|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        solved = "yes" if r["eval_mean_return"] >= target.threshold else "no"
        lines.append(
            f"| {r['seed']} | {_num(r['eval_mean_return'])} +- {_num(r['eval_std_return'])} | {solved} "
            f"| {r['wall_seconds']:.1f} | {r['steps_per_second']:,.0f} | {r['updates']:,} | {r['load']:.2f} |"
        )
    solved_count = sum(r["eval_mean_return"] >= target.threshold for r in rows)
    median_wall = statistics.median(r["wall_seconds"] for r in rows)
    wall_target = f" (target <= {target.median_wall_s:g} s)" if target.median_wall_s is not None else ""
    lines += [
        "",
        f"Solved: **{solved_count} of {len(rows)}** seeds with eval mean >= {target.threshold:g} "
        f"(target: all). Median wall time: **{median_wall:.1f} s**{wall_target}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write its section of BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", choices=list(TARGETS), default=list(TARGETS), help="presets to run")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per preset (default: 5 for cartpole, 3 for the others)"
    )
    parser.add_argument("--first-seed", type=int, default=0, help="first seed; seeds are consecutive from it")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)

    load_before = load_average()
    start = time.perf_counter()
    tables = []
    for preset in args.presets:
        count = args.seeds if args.seeds is not None else TARGETS[preset].seeds
        rows = run_preset(preset, list(range(args.first_seed, args.first_seed + count)))
        tables.append(preset_table(preset, rows))
    body = "\n\n".join(
        [
            "Each run is judged by the greedy return of its final network (no best checkpoint), evaluated "
            "at the end of training on a separate env. Wall time is the whole run, evaluation included; runs "
            "go one at a time on a machine shared with other work, so the load average is given.",
            f"Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}. "
            f"Total benchmark time: {time.perf_counter() - start:.0f} s.",
            *tables,
        ]
    )
    print(body)
    if not args.no_write:  # a run of some presets gets a section of its own, with its own machine line
        every = args.presets == list(TARGETS)
        name = "learning" if every else "learning-" + "-".join(args.presets)
        title = "Learning results (classic control)" if every else f"Learning results: {', '.join(args.presets)}"
        write_section(name, title, body)


if __name__ == "__main__":
    main()
