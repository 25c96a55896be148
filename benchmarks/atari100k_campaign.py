"""The Atari 100k campaign: a plan of (game, seed) runs fixed before any result, started or resumed by one command.

The plan (issue 21, chosen by rule, never by a score): seeds 0, 1 and 2 of the six games Alien, Amidar, Boxing,
Breakout, Krull and RoadRunner, seed-major (every game once before a second seed, so a campaign cut short
still covers every game); then the other games of the 26 in alphabetical order, three seeds each. Every run is
the ``atari100k`` preset as it is, on one torch thread.

    python -m benchmarks.atari100k_campaign                 # start or resume every unfinished run, 2 at a time
    python -m benchmarks.atari100k_campaign --status        # what is finished, how far the others got
    nice -n 19 setsid python -m benchmarks.atari100k_campaign > ~/atari100k-campaign/campaign.log 2>&1 &

Run it from a git worktree pinned at one commit, with its own venv; run directories and results live outside
the work tree (default ``~/atari100k-campaign``), so a new checkout or a refactor on main touches neither.
``kill -TERM`` of the process group stops every run at a step boundary after a checkpoint (exact resume on
the gymnasium backend); the same command goes on. A run killed before its first checkpoint starts again.

Each finished run writes ``<results-dir>/<Game>-s<seed>.json``: game, seed, the project commits it ran on, the
resolved config, the 100 evaluation returns in game order, their mean, env steps, updates, training and
evaluation seconds, CPU model and threads, and the versions of Python, torch, numpy, ale-py, gymnasium and
OpenCV. The report (``bench_atari100k --report-only``) reads only such files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from dueldqn.atari100k import GAMES

CORE_GAMES = ("Alien", "Amidar", "Boxing", "Breakout", "Krull", "RoadRunner")
SEEDS = (0, 1, 2)
HOME = Path.home() / "atari100k-campaign"
THREADS = 1  # one torch thread per run: a run sharing the machine never waits on a descheduled thread
NOTE_SUFFIX = ".commits.json"  # beside the run directory: the commits the run ran on


def plan() -> list[tuple[str, int]]:
    """Every run of the campaign, in the order they are started."""
    core = [(game, seed) for seed in SEEDS for game in CORE_GAMES]
    rest = [(game, seed) for game in sorted(GAMES) if game not in CORE_GAMES for seed in SEEDS]
    return core + rest


def result_name(game: str, seed: int) -> str:
    return f"{game}-s{seed}.json"


def code_commit() -> str:
    """The commit of the checkout this code runs from, with ``+dirty`` if its tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """``lscpu``'s model name (from /proc/cpuinfo), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def note_path(run_dir: Path) -> Path:
    """Beside the run directory, not in it: a run directory without a checkpoint is removed and started again."""
    return run_dir.with_name(run_dir.name + NOTE_SUFFIX)


def note_commit(run_dir: Path) -> list[str]:
    """Add this code's commit to the run's list of commits (one entry per commit it ran on)."""
    from dueldqn.files import atomic_write_json

    path = note_path(run_dir)
    note = json.loads(path.read_text()) if path.exists() else {"commits": []}
    commit = code_commit()
    if commit not in note["commits"]:
        note["commits"].append(commit)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, note)
    return list(note["commits"])


def write_result(game: str, seed: int, run_dir: Path, results_dir: Path, jobs: int) -> Path:
    """The run's raw result from its directory's config.json, eval.json and summary.json."""
    import numpy as np
    import torch

    from dueldqn.files import atomic_write_json
    from dueldqn.versions import installed_version

    config = json.loads((run_dir / "config.json").read_text())
    evaluation = json.loads((run_dir / "eval.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    note = json.loads(note_path(run_dir).read_text()) if note_path(run_dir).exists() else {"commits": []}
    train_s, eval_s = summary.get("train_seconds"), summary.get("eval_seconds")
    result = {
        "game": game,
        "seed": seed,
        "env_id": config["env_id"],
        "preset": "atari100k",
        "commits": note["commits"],
        "returns": evaluation["returns"],  # the evaluation games, in game order
        "lengths": evaluation["lengths"],
        "episodes": len(evaluation["returns"]),
        "mean_return": float(np.mean(evaluation["returns"])),
        "std_return": float(np.std(evaluation["returns"])),
        "eval_epsilon": evaluation["epsilon"],
        "env_steps": summary["total_steps"],
        "updates": summary["updates"],
        "train_seconds": train_s,
        "eval_seconds": eval_s,
        "wall_seconds": summary["wall_seconds"],
        "updates_per_second": summary["updates"] / train_s if train_s else None,
        "env_steps_per_second": summary["steps_per_second"],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": config["torch_threads"],
        "runs_at_once": jobs,
        "contended": f"{jobs} campaign run(s) at once on {THREADS} torch thread each, development work beside: "
        "wall times are contended",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        # the emulator and the env wrappers: a game's frames, and so its scores, may change between their releases
        "ale_py": installed_version("ale-py"),
        "gymnasium": installed_version("gymnasium"),
        "opencv": installed_version("opencv-python-headless"),
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": config,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / result_name(game, seed)
    atomic_write_json(path, result)
    return path


def run_single(game: str, seed: int, runs_dir: Path, results_dir: Path, jobs: int, smoke: dict[str, int]) -> int:
    """One run, in this process: train or resume it, evaluate, write its result. Returns an exit code."""
    from benchmarks.bench_atari100k import run_dir_of, run_one
    from dueldqn.errors import TrainingInterrupted

    run_dir = run_dir_of(runs_dir, game, seed)
    note_commit(run_dir)
    try:
        run_one(game, seed, runs_dir, {"torch_threads": THREADS, **smoke}, None)
    except TrainingInterrupted as stopped:
        print(f"{stopped}; the campaign command goes on from there", flush=True)
        return 130
    path = write_result(game, seed, run_dir, results_dir, jobs)
    print(f"{game} seed {seed}: result written to {path}", flush=True)
    return 0


def status(runs_dir: Path, results_dir: Path) -> list[str]:
    """One line per run of the plan: finished (with its score), its newest checkpoint, or not started."""
    from benchmarks.bench_atari100k import run_dir_of
    from dueldqn.checkpoint import list_checkpoints

    lines = []
    for game, seed in plan():
        result = results_dir / result_name(game, seed)
        run_dir = run_dir_of(runs_dir, game, seed)
        if result.exists():
            data = json.loads(result.read_text())
            lines.append(f"{game:>14} s{seed}: finished, {data['mean_return']:.1f} over {data['episodes']} games")
        elif run_dir.exists():
            ckpts = list_checkpoints(run_dir)
            lines.append(f"{game:>14} s{seed}: started, checkpoint {ckpts[0].name if ckpts else 'none'}")
        else:
            lines.append(f"{game:>14} s{seed}: not started")
    return lines


def campaign(runs_dir: Path, results_dir: Path, jobs: int, limit: int | None, smoke: list[str]) -> int:
    """Run every unfinished run of the plan, ``jobs`` at a time, each in a process of its own on one thread."""
    pending = [(g, s) for g, s in plan() if not (results_dir / result_name(g, s)).exists()]
    if limit is not None:
        pending = pending[:limit]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(THREADS),
        "MKL_NUM_THREADS": str(THREADS),
        "OPENBLAS_NUM_THREADS": str(THREADS),
    }
    running: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in running.values():  # each checkpoints at its next step and exits
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = 0
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"campaign: {len(pending)} runs to go, {jobs} at a time; runs in {runs_dir}, results in {results_dir}",
        flush=True,
    )
    while (pending and not stopping) or running:
        while pending and not stopping and len(running) < jobs:
            game, seed = pending.pop(0)
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.atari100k_campaign",
                "--one",
                game,
                str(seed),
                "--runs-dir",
                str(runs_dir),
                "--results-dir",
                str(results_dir),
                "--jobs",
                str(jobs),
                *smoke,
            ]
            with (runs_dir / f"{game}__s{seed}.log").open("ab") as log:  # the child keeps its own handle
                running[(game, seed)] = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parent.parent
                )
            print(
                f"{time.strftime('%H:%M:%S')} started {game} seed {seed} (pid {running[(game, seed)].pid})", flush=True
            )
        time.sleep(5)  # a poll of the children, not a wait for an event that could be missed
        for key, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[key]
            if code not in (0, 130):
                failed += 1
            print(f"{time.strftime('%H:%M:%S')} {key[0]} seed {key[1]} ended with exit code {code}", flush=True)
    print(
        "campaign stopped (each run checkpointed; run the same command to go on)"
        if stopping
        else f"campaign: done ({failed} failed)",
        flush=True,
    )
    return 130 if stopping else (1 if failed else 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=HOME / "runs")
    parser.add_argument("--results-dir", type=Path, default=HOME / "results")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    parser.add_argument("--limit", type=int, help="start at most this many of the unfinished runs")
    parser.add_argument("--status", action="store_true", help="print each run's state and exit")
    parser.add_argument("--total-steps", type=int, help="a smoke test's steps (the protocol: 100,000)")
    parser.add_argument("--eval-episodes", type=int, help="a smoke test's evaluation games (the protocol: 100)")
    parser.add_argument("--one", nargs=2, metavar=("GAME", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.status:
        print("\n".join(status(args.runs_dir, args.results_dir)))
        return
    smoke = {k: v for k, v in (("total_steps", args.total_steps), ("eval_episodes", args.eval_episodes)) if v}
    if args.one:
        game, seed = args.one[0], int(args.one[1])
        if game not in GAMES:
            parser.error(f"unknown game {game!r}; expected one of {sorted(GAMES)}")
        sys.exit(run_single(game, seed, args.runs_dir, args.results_dir, args.jobs, smoke))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in smoke.items()]
    sys.exit(campaign(args.runs_dir, args.results_dir, args.jobs, args.limit, flags))


if __name__ == "__main__":
    main()
