"""C51 and Rainbow beside the DQN presets on CartPole-v1 and Acrobot-v1: final greedy return, steps to threshold, speed.

Per env three learners, each over the same seeds, one run at a time:

- the env's DQN preset (``cartpole``: Double DQN; ``acrobot``: DQN), dueling, uniform one-step replay;
- C51: the same preset with ``distributional`` on (51 atoms on the env's return range, cross-entropy);
- Rainbow: all six parts (dueling, double, prioritized replay, 3-step returns, C51, noisy nets). On
  CartPole the tuned ``cartpole-rainbow`` preset; on Acrobot the ``acrobot`` preset with the parts added
  (not tuned).

Three figures per run: the greedy return of the final network (``eval_episodes`` episodes, as in
``bench_learning``; a noisy network plays with its mean weights), the env steps until the mean of the
last 10 *training* episodes first reached the threshold (475, -85; "-" if never), and the loop's env
steps/s (``summary.json``'s ``steps_per_second``: acting, env, replay and updates together).

    python -m benchmarks.bench_rainbow --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from benchmarks.bench_learning import _num, load_average
from benchmarks.bench_replay_variants import steps_to_threshold
from dueldqn.config import resolve_config
from dueldqn.training import train

RAINBOW_PARTS = {
    "algo": "double",
    "distributional": True,
    "noisy": True,
    "prioritized": True,
    "alpha": 0.5,
    "beta0": 0.4,
    "n_step": 3,
}
# Per env: the threshold, and each learner's (preset, overrides). C51's support covers the env's discounted
# returns at gamma 0.99: CartPole's 1 per step sums to at most ~99.3, Acrobot's -1 per step to at least -100.
ENVS: dict[str, tuple[float, dict[str, tuple[str, dict[str, Any]]]]] = {
    "CartPole-v1": (
        475.0,
        {
            "cartpole (double DQN)": ("cartpole", {}),
            "cartpole + C51": ("cartpole", {"distributional": True, "v_min": 0.0, "v_max": 100.0}),
            "cartpole-rainbow": ("cartpole-rainbow", {}),
        },
    ),
    "Acrobot-v1": (
        -85.0,
        {
            "acrobot (DQN)": ("acrobot", {}),
            "acrobot + C51": ("acrobot", {"distributional": True, "v_min": -100.0, "v_max": 0.0}),
            "acrobot + Rainbow parts": ("acrobot", {**RAINBOW_PARTS, "v_min": -100.0, "v_max": 0.0}),
        },
    ),
}


def run(preset: str, overrides: dict[str, Any], seed: int, threshold: float, tmp: Path) -> dict[str, Any]:
    """Train one run; its summary plus the steps to the threshold."""
    config = resolve_config(preset=preset, overrides={"seed": seed, **overrides})
    result = train(config, run_dir=tmp / f"{preset}-{len(overrides)}-s{seed}", progress=False, tensorboard=False)
    return result.summary | {"to_threshold": steps_to_threshold(result.run_dir, threshold)}


def table(env_id: str, threshold: float, results: dict[str, list[dict[str, Any]]]) -> str:
    """One env's markdown table: a row per learner."""
    lines = [
        f"### {env_id} (threshold {threshold:g})",
        "",
        "| learner | final greedy return per seed | solved | median steps to a 10-episode training mean "
        f">= {threshold:g} | median env steps/s | median wall s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        finals = ", ".join(_num(r["eval_mean_return"]) for r in rows)
        solved = sum(r["eval_mean_return"] >= threshold for r in rows)
        reached = [r["to_threshold"] for r in rows if r["to_threshold"] is not None]
        to_threshold = f"{statistics.median(reached):,.0f} ({len(reached)}/{len(rows)})" if reached else "-"
        sps = statistics.median(r["steps_per_second"] for r in rows)
        wall = statistics.median(r["wall_seconds"] for r in rows)
        lines.append(f"| {name} | {finals} | {solved}/{len(rows)} | {to_threshold} | {sps:,.0f} | {wall:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="first seed; seeds are consecutive from it")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the final evaluation runs outside the loop's thread limit; one core per run here
    intro = (
        f"Seeds {args.first_seed}-{args.first_seed + args.seeds - 1} of each learner, one run at a time, torch on "
        "one thread. C51: the preset with "
        "`distributional` (51 atoms on [0, 100] for CartPole, [-100, 0] for Acrobot). Rainbow: dueling, double, "
        "prioritized (alpha 0.5, beta 0.4 -> 1), 3-step, C51 and noisy nets (sigma0 0.5, epsilon as the preset). "
        "Final greedy return as in the learning section; steps to threshold from the training episodes; "
        "steps/s is the loop's (acting, env, replay, updates). Distributional and noisy MLPs run on torch, the "
        "plain presets on the numpy MLP path."
    )
    with tempfile.TemporaryDirectory(prefix="bench-rainbow-") as tmp:
        for env_id in args.envs:  # one section per env, so that each can be rerun on its own
            load_before, start = load_average(), time.perf_counter()
            threshold, learners = ENVS[env_id]
            results: dict[str, list[dict[str, Any]]] = {}
            for name, (preset, overrides) in learners.items():
                results[name] = []
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    row = run(preset, overrides, seed, threshold, Path(tmp))
                    results[name].append(row)
                    print(
                        f"{name} seed {seed}: eval {_num(row['eval_mean_return'])}, to threshold "
                        f"{row['to_threshold']}, {row['steps_per_second']:.0f} steps/s",
                        flush=True,
                    )
            body = "\n\n".join(
                [
                    intro,
                    f"Load average before: {load_before}; after: {load_average()}. Total time: "
                    f"{time.perf_counter() - start:.0f} s.",
                    table(env_id, threshold, results),
                ]
            )
            print(body)
            if not args.no_write:  # more seeds of an env (--first-seed) get a section of their own
                seeds = f"-s{args.first_seed}" if args.first_seed else ""
                write_section(
                    f"rainbow-{env_id.split('-')[0].lower()}{seeds}",
                    f"C51 and Rainbow against the DQN presets: {env_id}"
                    + (f", seeds from {args.first_seed}" if args.first_seed else ""),
                    body,
                )


if __name__ == "__main__":
    main()
