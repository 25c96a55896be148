"""Time before and after the training loop: ``dueldqn --help`` and the default job, against SB3.

A user waits for imports, building the envs and networks, the final evaluation, the plot and the
files, on top of the loop itself. Each job runs in a fresh subprocess (cold imports, as a user
gets them), one at a time, and is timed from the parent; the loop's own time comes from the
job (``summary.json``'s steps / steps per second for dueldqn, the duration of ``learn()`` for
SB3), and "outside the loop" is the difference.

- ``dueldqn --help`` and ``import torch`` (the floor any torch program pays);
- the default job, ``dueldqn train`` (the ``cartpole`` preset: 40k steps, a 20-episode greedy
  evaluation, checkpoint, TensorBoard events, ``learning_curve.png``);
- Stable-Baselines3's DQN with the same hyperparameters, 40k steps, ``evaluate_policy`` over 20
  episodes and ``model.save`` (the same work, without the plot and TensorBoard).

    pip install -e ".[bench]"
    python -m benchmarks.bench_startup          # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section

# SB3's DQN set to the cartpole preset (dueldqn/config.py): the same steps, batch, rates and schedule.
SB3_JOB = """
import json, sys, tempfile, time
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger
model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=256, buffer_size=50_000,
            learning_starts=1_000, train_freq=12, gradient_steps=5, target_update_interval=128,
            exploration_fraction=5_000 / 40_000, exploration_final_eps=0.04, gamma=0.99,
            policy_kwargs={"net_arch": [64, 64]}, seed=0, verbose=0)
model.set_logger(Logger(None, []))  # no /tmp/SB3-<time> folder
start = time.perf_counter()
model.learn(total_timesteps=40_000)
loop = time.perf_counter() - start
mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=20)
with tempfile.TemporaryDirectory() as tmp:
    model.save(tmp + "/model")
print(json.dumps({"loop": loop, "eval": float(mean)}))
"""


def wall(argv: list[str]) -> tuple[float, str]:
    """Seconds a subprocess took from start to exit, and what it printed; a failure is an error."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def dueldqn_job() -> tuple[float, float, float]:
    """(wall, loop, eval return) of ``dueldqn train`` with its defaults."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        seconds, _ = wall([sys.executable, "-m", "dueldqn.cli", "train", "--no-progress", "--run-dir", tmp + "/run"])
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    return seconds, summary["total_steps"] / summary["steps_per_second"], summary["eval_mean_return"]


def sb3_job() -> tuple[float, float, float]:
    """(wall, loop, eval return) of the same job in Stable-Baselines3."""
    seconds, out = wall([sys.executable, "-c", SB3_JOB])
    result = json.loads(out.strip().splitlines()[-1])
    return seconds, result["loop"], result["eval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each job, in turn")
    parser.add_argument("--no-sb3", action="store_true", help="leave Stable-Baselines3 out")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md as it is")
    args = parser.parse_args()

    help_s = [wall([sys.executable, "-m", "dueldqn.cli", "--help"])[0] for _ in range(5)]
    torch_s = [wall([sys.executable, "-c", "import torch"])[0] for _ in range(5)]
    jobs = {"dueldqn": dueldqn_job} | ({} if args.no_sb3 else {"sb3": sb3_job})
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            results[name].append(job())
            w, loop, ret = results[name][-1]
            print(f"{name}: wall {w:.2f} s, loop {loop:.2f} s, outside {w - loop:.2f} s, eval {ret:.1f}", flush=True)

    def cells(seconds: list[float]) -> str:
        return f"{', '.join(f'{x:.2f}' for x in seconds)} | {statistics.median(seconds):.2f}"

    rows = [f"| `dueldqn --help` | {cells(help_s)} | | |", f"| `python -c 'import torch'` | {cells(torch_s)} | | |"]
    for name, runs in results.items():
        label = "`dueldqn train` (default job)" if name == "dueldqn" else "SB3 DQN, same job"
        wall_median = statistics.median(w for w, _, _ in runs)
        returns = ", ".join(f"{r:.0f}" for _, _, r in runs)
        outside = cells([w - loop for w, loop, _ in runs])
        rows.append(f"| {label}: outside the loop | {outside} | {wall_median:.2f} | {returns} |")
    body = (
        "Each job in a fresh subprocess, timed from its start to its exit; the loop's own time comes from the job "
        "(dueldqn: steps / steps per second in summary.json; SB3: the duration of `learn()`). The jobs: the "
        f"`cartpole` preset (40k steps, 20 greedy evaluation episodes) and SB3's DQN with the same settings, "
        f"{args.repeats} repeats in turn.\n\n"
        "| what | seconds per run | median | median wall of the job | eval return per run |\n"
        "|---|---|---:|---:|---|\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("startup", "Time outside the training loop: `--help` and the default job", body)


if __name__ == "__main__":
    main()
