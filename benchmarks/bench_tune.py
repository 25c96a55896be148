"""Tune CartPole-v1 and Acrobot-v1 from the default space, then compare the found config with the preset.

For each env, ``dueldqn tune`` runs from the default search space around the env's preset (the
same total steps) with a fixed trial budget and a time cap; then the best config and the
hand-tuned preset each train on the same seeds. Each of those runs pauses every ``chunk`` env
steps (``train(stop_at=)``, bit-exact) for a 10-episode greedy evaluation on a separate env,
which gives the env steps and the training-loop seconds (evaluations and restarts excluded) at
which the greedy policy first reaches the solve threshold. The final greedy return is the run's
own end-of-training evaluation (the preset's ``eval_episodes``). Runs go one at a time.

    python -m benchmarks.bench_tune                               # tune both envs, compare, write the section
    python -m benchmarks.bench_tune --reuse --envs CartPole-v1    # compare with an existing study's best config
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from dueldqn.checkpoint import list_checkpoints
from dueldqn.cli import main as dueldqn_main
from dueldqn.config import DEFAULT_PRESETS, Config, load_config, resolve_config
from dueldqn.training import train
from dueldqn.tune.study import greedy_return

THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}  # gymnasium's reward_threshold
TRIALS = {"CartPole-v1": 50, "Acrobot-v1": 30}
CHUNKS = {"CartPole-v1": 2_000, "Acrobot-v1": 5_000}  # env steps between greedy checks
ROOT = Path("runs/bench-tune")


def tune_command(env_id: str, trials: int, timeout: float, jobs: int = 1) -> list[str]:
    """The ``dueldqn tune`` arguments of the benchmark's study for ``env_id`` (journal file storage for jobs > 1)."""
    storage = f"journal:{ROOT}/bench-{env_id}.journal" if jobs > 1 else f"sqlite:///{ROOT}/bench-{env_id}.db"
    return [
        "tune",
        "--env",
        env_id,
        "--trials",
        str(trials),
        "--timeout",
        str(timeout),
        "--startup-trials",
        "8",
        "--jobs",
        str(jobs),
        "--study",
        f"bench-{env_id}",
        "--storage",
        storage,
        "--out",
        str(ROOT / env_id),
        "--no-progress",
    ]


def loop_seconds(run_dir: Path) -> float:
    """Seconds the run has spent in its training loop so far (from its newest checkpoint)."""
    state = json.loads((list_checkpoints(run_dir)[0] / "state.json").read_text())
    return float(state["components"]["loop"]["train_seconds"])  # checkpoint format 2


def measure(config: Config, run_dir: Path, chunk: int, threshold: float) -> dict[str, Any]:
    """Train ``config`` in chunks; greedy return at each pause, first step and loop time at the threshold."""
    reached: tuple[int, float] | None = None
    step = chunk
    result = train(config, run_dir=run_dir, stop_at=step, progress=False, tensorboard=False)
    while not result.finished:
        if reached is None and greedy_return(result.agent, config, 10) >= threshold:
            reached = (step, loop_seconds(run_dir))
        step += chunk
        result = train(resume=run_dir, stop_at=step, progress=False, tensorboard=False)
    summary = result.summary
    if reached is None and summary["eval_mean_return"] >= threshold:
        reached = (summary["total_steps"], summary["total_steps"] / summary["steps_per_second"])
    return {
        "seed": config.seed,
        "final": summary["eval_mean_return"],
        "steps_to": None if reached is None else reached[0],
        "seconds_to": None if reached is None else reached[1],
        "loop_seconds": summary["total_steps"] / summary["steps_per_second"],
        "load": os.getloadavg()[0],
    }


def _median(values: list[float | None], fmt: str) -> str:
    got = [v for v in values if v is not None]
    return f"{statistics.median(got):{fmt}} ({len(got)}/{len(values)})" if got else "- (0)"


def table(env_id: str, results: dict[str, list[dict[str, Any]]], seeds: int) -> str:
    """The markdown table of the runs so far, one line per config; marked partial while seeds are missing."""
    threshold = THRESHOLDS[env_id]
    lines = [
        f"| {env_id} config | final greedy return per seed | solved (>= {threshold:g}) "
        f"| median env steps to a greedy 10-episode mean >= {threshold:g} | median loop s to it | median loop s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        if not rows:
            continue
        finals = ", ".join(f"{r['final']:.1f}" for r in rows)
        partial = f" (partial: {len(rows)} of {seeds} seeds)" if len(rows) < seeds else ""
        lines.append(
            f"| {name}{partial} | {finals} "
            f"| {sum(r['final'] >= threshold for r in rows)}/{len(rows)} "
            f"| {_median([r['steps_to'] for r in rows], ',.0f')} "
            f"| {_median([r['seconds_to'] for r in rows], '.1f')} "
            f"| {statistics.median(r['loop_seconds'] for r in rows):.1f} |"
        )
    return "\n".join(lines)


def compare(env_id: str, found: Config, seeds: list[int], publish: Callable[[str], None]) -> str:
    """Train the preset and the found config on ``seeds``, alternating; ``publish`` gets the table after each run."""
    configs = {f"preset `{DEFAULT_PRESETS[env_id]}`": resolve_config(env_id), "tuned": found}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        for seed in seeds:
            for name, config in configs.items():
                run_dir = Path(tmp) / f"{name[:5]}-{seed}"
                row = measure(config.replace(seed=seed), run_dir, CHUNKS[env_id], THRESHOLDS[env_id])
                results[name].append(row)
                print(f"{env_id} {name} seed {seed}: {row}", flush=True)
                publish(table(env_id, results, len(seeds)))
    return table(env_id, results, len(seeds))


def study_summary(env_id: str) -> str:
    """The study's trial counts, its time and the found config's changes from the preset."""
    top = (ROOT / env_id / "top_trials.md").read_text().split("\n", 2)[2]
    found = load_config(ROOT / env_id / "best_config.json").to_dict()
    preset = resolve_config(env_id).to_dict()
    changes = ", ".join(f"{k}={found[k]}" for k in found if found[k] != preset[k] and k != "seed")
    return f"Found config (changes from the preset): {changes}\n\nTop trials of the study:\n\n{top.strip()}"


def main(argv: list[str] | None = None) -> None:
    """Tune, compare and write the ``tune`` section of BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", choices=list(THRESHOLDS), default=list(THRESHOLDS))
    parser.add_argument("--timeout", type=float, default=1_500.0, help="seconds of tuning per env (default 1500)")
    parser.add_argument("--jobs", type=int, default=2, help="tune worker processes, one core each (default 2)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for the comparison (default 5)")
    parser.add_argument("--reuse", action="store_true", help="compare with the existing studies' best configs")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)

    every = args.envs == list(THRESHOLDS)
    name = "tune" if every else "tune-" + "-".join(e.lower() for e in args.envs)
    title = "Hyperparameter search: tuned configs against the presets" + ("" if every else f" ({', '.join(args.envs)})")
    intro = (
        "Each study searches the default space around the env's preset (same total steps), trials trained at "
        "seed 0, pruned by the median rule at 1/4, 1/2 and 3/4 of the run from 10-episode greedy evaluations; "
        "a trial's value is the mean of those and the final evaluation. The found config and the preset then "
        f"train on seeds 0-{args.seeds - 1}, alternating, one run at a time, pausing every 2,000 (CartPole) or "
        "5,000 (Acrobot) env steps for a 10-episode greedy check: the first pause that reaches the threshold gives "
        "the env steps and the training-loop seconds (setup and evaluations excluded). The final greedy return is "
        "the run's own end-of-training evaluation (20 episodes). The study runs `--jobs` worker processes, one core "
        "each, so a trial's wall time is that of one core; the load average at the start of each comparison is "
        "given; compare times within a table, not with other sections."
    )
    sections: list[str] = []

    def publish(current: str) -> None:
        body = "\n\n".join([intro, *sections, current])
        if not args.no_write:  # a run of one env gets a section of its own, with its own machine line
            write_section(name, title, body)

    for env_id in args.envs:
        command = tune_command(env_id, TRIALS[env_id], args.timeout, args.jobs)
        start = time.perf_counter()
        if not args.reuse:
            assert dueldqn_main(command) == 0
        tune_seconds = time.perf_counter() - start
        found = load_config(ROOT / env_id / "best_config.json")
        tuned = "tuned in this run" if not args.reuse else "study reused"
        head = (
            f"### {env_id}\n\nStudy: `dueldqn {' '.join(command)}` ({tuned}; {tune_seconds:.0f} s here).\n\n"
            f"{study_summary(env_id)}\n\nLoad average (1, 5, 15 min) at the start of the comparison: "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}."
        )

        def publish_under(current: str, head: str = head) -> None:
            publish(f"{head}\n\n{current}")

        result = compare(env_id, found, list(range(args.seeds)), publish_under)
        sections.append(f"{head}\n\n{result}")
    print("\n\n".join([intro, *sections]))


if __name__ == "__main__":
    main()
