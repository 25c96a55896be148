"""Action masks on Taxi-v4: env steps until the greedy policy reaches 98% of the optimal return, with and without.

The optimum is the expected return of the best policy from Taxi's initial-state distribution, by value
iteration on the env's own table (``env.unwrapped.P``, undiscounted: every episode of the best policy
ends within the time limit). Each run is the ``taxi`` preset with evaluations every ``--eval-every`` env
steps (``--eval-episodes`` greedy episodes on the evaluation seed, seed + 20,000) and ``stop_return`` at
98% of the optimum, so it stops at the first evaluation that reaches it; ``--cap`` is the step cap
(the preset's 150k). Masked runs (``action_mask="auto"``: Taxi gives ``info["action_mask"]``) act,
learn and evaluate over the legal actions; the others (``"off"``) see every action and learn that the
illegal ones cost -10. The best policy's own evaluation (the same seed and episode count) is reported
too: a finite evaluation can sit below the expectation, so the target is only fair where that reaches
it. (Taxi draws from its random stream on every step, so later start states depend on the steps taken
before: a near-best policy's evaluation can even score a little more.) One run at a time; raw rows to
``benchmarks/results/bench_masks.json``; ``--report-only`` rewrites the section from them.

    python -m benchmarks.bench_masks                      # seeds 0, 1, 2; with and without masks
    python -m benchmarks.bench_masks --seeds 1 --cap 20000 --no-write
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

import gymnasium as gym
import numpy as np

from benchmarks._report import write_section
from dueldqn.checkpoint import atomic_write_json
from dueldqn.config import resolve_config
from dueldqn.seeds import TRAINING_EVAL
from dueldqn.training import train

ENV_ID = "Taxi-v4"
FRACTION = 0.98
RESULTS = Path(__file__).resolve().parent / "results" / "bench_masks.json"
TITLE = "Action masks: Taxi-v4, env steps to 98% of the optimum"
COMMAND = "python -m benchmarks.bench_masks"


def optimal_q(env_id: str = ENV_ID) -> np.ndarray:
    """``Q*(s, a)`` ``(S, A)`` by undiscounted value iteration on the env's table ``P[s][a] = [(p, s', r, done)]``."""
    model = gym.make(env_id).unwrapped
    table = model.P  # type: ignore[attr-defined]
    n_states, n_actions = model.observation_space.n, model.action_space.n  # type: ignore[attr-defined]
    v_S = np.zeros(n_states)
    for _ in range(10_000):
        q_SA = np.array(
            [
                [sum(p * (r + (0.0 if done else v_S[s2])) for p, s2, r, done in table[s][a]) for a in range(n_actions)]
                for s in range(n_states)
            ]
        )
        if np.abs(q_SA.max(axis=1) - v_S).max() < 1e-10:
            return q_SA
        v_S = q_SA.max(axis=1)
    raise RuntimeError("value iteration did not converge")


def optimal_return(q_SA: np.ndarray, env_id: str = ENV_ID) -> float:
    """The best policy's expected return from the initial-state distribution."""
    start_S = gym.make(env_id).unwrapped.initial_state_distrib  # type: ignore[attr-defined]
    return float(start_S @ q_SA.max(axis=1))


def optimal_on_episodes(q_SA: np.ndarray, seed: int, episodes: int, env_id: str = ENV_ID) -> float:
    """The best policy's mean return in an evaluation of ``episodes`` episodes (the env reset with ``seed`` once)."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    returns = []
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(q_SA[obs].argmax()))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    return float(np.mean(returns))


def evaluations(run_dir: Path) -> list[tuple[int, float]]:
    """``(step, mean return)`` of every evaluation during training, from ``metrics.csv``."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(row["step"]), float(row["return"])) for row in csv.DictReader(f) if row["kind"] == "eval"]


def run(seed: int, mask: str, target: float, args: argparse.Namespace) -> dict[str, Any]:
    """One run of the taxi preset; its row."""
    config = resolve_config(
        ENV_ID,
        "taxi",
        {
            "seed": seed,
            "action_mask": mask,
            "total_steps": args.cap,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "stop_return": target,
            "checkpoint_every": 0,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(config, run_dir=Path(tmp) / "run", progress=False, tensorboard=False)
        wall = time.perf_counter() - start
        evals = evaluations(result.run_dir)
    reached = result.summary.get("stop_return_reached_at")
    return {
        "seed": seed,
        "action_mask": mask,
        "reached_at": reached,
        "steps": result.summary["total_steps"],
        "updates": result.summary["updates"],
        "wall_seconds": round(wall, 1),
        "best_eval": max((r for _, r in evals), default=None),
        "evaluations": evals,
    }


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The BENCHMARKS.md section's body."""
    lines = [
        f"Taxi-v4, the `taxi` preset (Double DQN, 150k-step schedules) with an evaluation of {meta['eval_episodes']} "
        f"greedy episodes every {meta['eval_every']:,} env steps; a run stops at the first evaluation whose mean "
        f"reaches 98% of the optimum, capped at {meta['cap']:,} steps. Optimum (value iteration on the env's "
        f"table, from the initial-state distribution): **{meta['optimum']:.3f}**; target **{meta['target']:.3f}**. "
        "With masks the policy explores, bootstraps and evaluates over `info['action_mask']`'s legal actions only.",
        "",
        f"**Contended**: the 2 cores were shared with a background Atari campaign (niced) and other helpers; "
        f"CPU: {meta['cpu']}. Wall times are indicative only.",
        "",
        "| seed | masks | env steps to target | best eval mean | best policy's evaluation, same seed | wall s |",
        "|---:|:---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        reached = f"{row['reached_at']:,}" if row["reached_at"] is not None else f"not in {row['steps']:,}"
        best = "n/a" if row["best_eval"] is None else f"{row['best_eval']:.3f}"
        lines.append(
            f"| {row['seed']} | {'on' if row['action_mask'] == 'auto' else 'off'} | {reached} | {best} | "
            f"{meta['optimal_on_eval'][str(row['seed'])]:.3f} | {row['wall_seconds']:.0f} |"
        )
    for mask in ("auto", "off"):
        steps = [r["reached_at"] for r in rows if r["action_mask"] == mask]
        hit = [s for s in steps if s is not None]
        median = f"median {int(np.median(hit)):,} steps over those" if hit else "none"
        lines.append(
            f"\nMasks {'on' if mask == 'auto' else 'off'}: {len(hit)} of {len(steps)} seeds reached the "
            f"target; {median}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--cap", type=int, default=150_000, help="step cap (the preset's total_steps)")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=1_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results and BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the section from the saved results")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads(RESULTS.read_text())
        write_section("masks-taxi", TITLE, report(saved["rows"], saved["meta"]), command_line=COMMAND)
        return
    q_SA = optimal_q()
    optimum = optimal_return(q_SA)
    target = FRACTION * optimum
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    on_eval = {str(s): optimal_on_episodes(q_SA, s + TRAINING_EVAL, args.eval_episodes) for s in seeds}
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    meta = {
        "env_id": ENV_ID,
        "optimum": optimum,
        "target": target,
        "optimal_on_eval": on_eval,
        "cap": args.cap,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "cpu": cpu,
        "contended": True,
    }
    print(f"optimum {optimum:.4f}, target {target:.4f}, best policy on the evaluation episodes {on_eval}", flush=True)
    rows = []
    for seed in seeds:
        for mask in ("auto", "off"):
            row = run(seed, mask, target, args)
            rows.append(row)
            print({k: v for k, v in row.items() if k != "evaluations"}, flush=True)
    body = report(rows, meta)
    print(body)
    if not args.no_write:
        atomic_write_json(RESULTS, {"meta": meta, "rows": rows})
        write_section("masks-taxi", TITLE, body)


if __name__ == "__main__":
    main()
