"""Ape-X CartPole on many seeds: how often a setting ends at a greedy 475 (prints; writes nothing).

A Ray run is not reproducible (chunk arrival order, weight lag), so a setting is judged by the
share of seeds that end solved, not by one run. Each run is the ``cartpole`` preset with the
``--overrides`` (JSON) on top, checkpointed every 2,000 steps; after it the run's own final
evaluation (20 greedy episodes) and the first checkpoint at a greedy 475 (10 episodes) are printed,
one line per seed, then a summary line. With ``stop_return`` in the overrides the run stops at its
first evaluation during training at that return (``eval_every``), and that step is printed instead.
BENCHMARKS.md's hand notes on the Ape-X settings cite the commands they ran.

    python -m benchmarks.bench_apex_seeds --seeds 0-31             # preset cartpole-apex (stops at 475)
    python -m benchmarks.bench_apex_seeds --seeds 0-15 --no-stop   # its settings for 40k steps, no stop
    python -m benchmarks.bench_apex_seeds --seeds 0-7 --no-stop --overrides '{"prioritized": false}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_apex import CHECK_EVERY, SCORE, first_reach, start_ray, stop_ray
from dueldqn.config import PRESETS, resolve_config
from dueldqn.training import train


def seed_range(text: str) -> list[int]:
    """``"0-15"`` or ``"3,8,9"`` as a list of seeds."""
    if "-" in text:
        first, last = (int(x) for x in text.split("-"))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", default="{}", help="JSON overrides on top of the preset")
    parser.add_argument("--preset", default="cartpole-apex", help="cartpole-apex, or cartpole (then set executor)")
    parser.add_argument("--seeds", default="0-7", type=seed_range)
    parser.add_argument("--no-stop", action="store_true", help="the cartpole preset's 40k steps, no stop at 475")
    args = parser.parse_args()
    extra = json.loads(args.overrides)
    if args.no_stop:
        extra = {"total_steps": PRESETS["cartpole"]["total_steps"], "eval_every": 0, "stop_return": None, **extra}
    start_ray()
    scores, reached = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in args.seeds:
                overrides = {
                    **PRESETS[args.preset],
                    "eval_episodes": 20,
                    "seed": seed,
                    "checkpoint_every": CHECK_EVERY,
                    "keep_checkpoints": 100,
                    "save_replay": False,
                    **extra,
                }
                config = resolve_config("CartPole-v1", None, overrides)
                run_dir = Path(tmp) / f"seed{seed}"
                start = time.perf_counter()
                result = train(config, run_dir=run_dir, progress=False, tensorboard=False)
                if config.stop_return is None:
                    steps_to, _ = first_reach(run_dir, config)
                else:  # the run stopped at its first evaluation at stop_return (or ran to the end)
                    steps_to = result.summary["stop_return_reached_at"]
                score = float(result.summary["eval_mean_return"])
                scores.append(score)
                reached.append(steps_to)
                print(
                    f"seed {seed}: final {score:.1f}, first greedy {SCORE:g} at {steps_to} env steps, "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )
    finally:
        stop_ray()
    hits = [s for s in reached if s is not None]
    print(
        f"{args.preset} + {extra}: final >= {SCORE:g} on {sum(s >= SCORE for s in scores)}/{len(scores)}, "
        f"reached on {len(hits)}/{len(scores)} (median {statistics.median(hits) if hits else '-'} env steps); "
        f"finals {', '.join(f'{s:.1f}' for s in scores)}"
    )


if __name__ == "__main__":
    main()
