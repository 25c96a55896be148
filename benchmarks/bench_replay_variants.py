"""Uniform replay against prioritized replay, 3-step returns and both, on the tuned presets.

Each (preset, variant, seed) is trained once, one run at a time, with the preset's settings and
only the variant's switches changed. Two figures per run: the greedy return of the final network
(``eval_episodes`` episodes, as in ``bench_learning``), and the env steps until the mean return
of the last 10 *training* episodes first reached the preset's threshold (an exploring policy,
so a pessimistic "time to solve"; "-" if it never did).

    python -m benchmarks.bench_replay_variants --presets cartpole --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from benchmarks.bench_learning import TARGETS, _num, load_average
from dueldqn.config import resolve_config
from dueldqn.logger import read_metrics
from dueldqn.training import train

VARIANTS: dict[str, dict[str, Any]] = {
    "uniform": {},
    "per": {"prioritized": True},
    "3-step": {"n_step": 3},
    "per+3-step": {"prioritized": True, "n_step": 3},
}


def steps_to_threshold(run_dir: Path, threshold: float, window: int = 10) -> int | None:
    """The env step at which the mean of the last ``window`` training episodes first reached ``threshold``."""
    episodes = read_metrics(run_dir)["episode"]
    for i in range(window, len(episodes) + 1):
        if statistics.fmean(r["return"] for r in episodes[i - window : i]) >= threshold:
            return int(episodes[i - 1]["step"])
    return None


def run(preset: str, variant: str, seed: int, tmp: Path) -> dict[str, Any]:
    """Train one run; its summary plus the steps to the threshold."""
    config = resolve_config(preset=preset, overrides={"seed": seed, **VARIANTS[variant]})
    result = train(config, run_dir=tmp / f"{preset}-{variant}-s{seed}", progress=False, tensorboard=False)
    return result.summary | {"to_threshold": steps_to_threshold(result.run_dir, TARGETS[preset].threshold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", choices=list(TARGETS), default=["cartpole", "acrobot", "mountaincar"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md as it is")
    args = parser.parse_args()

    load_before, start = load_average(), time.perf_counter()
    tables = []
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        for preset in args.presets:
            threshold = TARGETS[preset].threshold
            lines = [
                f"### `{preset}` (threshold {threshold:g})",
                "",
                "| variant | final greedy return per seed | solved | median steps to a 10-episode training mean "
                f">= {threshold:g} | median wall s |",
                "|---|---|---:|---:|---:|",
            ]
            for variant in args.variants:
                rows = []
                for seed in range(args.seeds):
                    rows.append(run(preset, variant, seed, Path(tmp)))
                    r = rows[-1]
                    print(
                        f"{preset} {variant} seed {seed}: eval {_num(r['eval_mean_return'])}, "
                        f"to threshold {r['to_threshold']}, {r['wall_seconds']:.1f} s",
                        flush=True,
                    )
                reached = [r["to_threshold"] for r in rows if r["to_threshold"] is not None]
                to_threshold = f"{statistics.median(reached):,.0f} ({len(reached)}/{len(rows)})" if reached else "-"
                solved = sum(r["eval_mean_return"] >= threshold for r in rows)
                lines.append(
                    f"| {variant} | {', '.join(_num(r['eval_mean_return']) for r in rows)} | {solved}/{len(rows)} "
                    f"| {to_threshold} | {statistics.median(r['wall_seconds'] for r in rows):.1f} |"
                )
            tables.append("\n".join(lines))
    body = "\n\n".join(
        [
            f"Each preset's own settings, seeds 0-{args.seeds - 1}; variants change only `prioritized` (alpha 0.6, "
            "beta 0.4 -> 1) and `n_step`. Final greedy return as in the learning section; steps to threshold from "
            "the training episodes (exploring policy). One run at a time.",
            f"Load average before: {load_before}; after: {load_average()}. "
            f"Total time: {time.perf_counter() - start:.0f} s.",
            *tables,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("replay-variants-" + "-".join(args.presets), f"Replay variants: {', '.join(args.presets)}", body)


if __name__ == "__main__":
    main()
