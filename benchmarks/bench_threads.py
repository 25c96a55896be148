"""Training speed on a shared machine: env steps/s alone and beside CPU-bound processes, by thread setting.

Each measurement trains in a fresh process (its own OpenMP pool and environment variables) while
``--busy`` processes run ``python -c "while True: pass"`` beside it, and reads env steps/s from the
run's ``metrics.csv`` rows over a window after learning has started (``--window``): for Atari the
``atari100k`` preset (an update per env step) and the ``breakout`` preset (an update every 4 steps,
learning from step 1,600 here instead of 80,000), for CartPole the numpy MLP path. Thread settings:
``--torch-threads 1``, ``2`` and ``0`` (the timed policy of ``dueldqn.threads``), and 2 threads with
OpenMP's waits made passive (``OMP_WAIT_POLICY=PASSIVE``) or spin-free (``GOMP_SPINCOUNT=0``).

"Other load" is the CPU the rest of the machine used during the window (cores), from ``/proc/stat``
less this benchmark's processes: a row measured while something else ran says so.

    python -m benchmarks.bench_threads                      # everything, into BENCHMARKS.md (~25 min on 2 cores)
    python -m benchmarks.bench_threads --only atari100k --busy 1 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from dueldqn.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bench_threads.json"
RAY_TMP = Path(tempfile.gettempdir()) / "ray"  # where a local Ray started by a run keeps its session
WORKLOADS: dict[str, dict[str, Any]] = {
    "atari100k": {"env_id": "ALE/Breakout-v5", "preset": "atari100k", "window": (1_900, 2_500)},
    "breakout": {
        "env_id": "ALE/Breakout-v5",
        "preset": "breakout",
        "learning_starts": 1_600,
        "buffer_size": 100_000,
        "epsilon_decay_steps": 5_000,
        "window": (2_400, 4_000),
    },
    "cartpole": {"env_id": "CartPole-v1", "preset": "cartpole", "window": (2_000, 10_000)},
    # Ape-X on one machine: 2 runner actors (1 thread each) and a replay shard share the cores with the learner,
    # whose count is the setting; runs to the window's end (the ray executor has no stop_at) and plays 1 game.
    "apex-breakout": {
        "env_id": "ALE/Breakout-v5",
        "preset": "breakout",
        "executor": "ray",
        "num_env_runners": 2,
        "learning_starts": 1_600,
        "buffer_size": 100_000,
        "epsilon_decay_steps": 5_000,
        "eval_episodes": 1,
        "eval_epsilon": 1.0,
        "window": (3_000, 6_000),
    },
}
SETTINGS: dict[str, tuple[int, dict[str, str]]] = {  # name: (torch_threads, extra environment)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "auto (default)": (0, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "2 threads, GOMP_SPINCOUNT=0": (2, {"GOMP_SPINCOUNT": "0"}),
}
PLAN = [  # (workload, settings): CartPole's MLP path runs one thread whatever the setting
    ("atari100k", ["1 thread", "2 threads", "auto (default)"]),
    ("breakout", ["1 thread", "2 threads", "auto (default)"]),
    ("cartpole", ["auto (default)"]),
    ("atari100k", ["2 threads, OMP_WAIT_POLICY=PASSIVE", "2 threads, GOMP_SPINCOUNT=0"]),
    ("apex-breakout", ["1 thread", "2 threads", "auto (default)"]),
]


def measure_here(workload: str, threads: int, run_dir: Path) -> dict[str, Any]:
    """In the measured process: train to the window's end, return env steps/s over the window and the counts."""
    from dueldqn.logger import read_metrics
    from dueldqn.training import train

    spec = dict(WORKLOADS[workload])
    start, end = spec.pop("window")
    env_id, preset = spec.pop("env_id"), spec.pop("preset")
    apex = spec.get("executor") == "ray"
    stop: dict[str, Any] = {"total_steps": end} if apex else {"stop_at": end}  # the ray executor has no stop_at
    common: dict[str, Any] = {
        "seed": 0,
        "torch_threads": threads,
        "log_interval": 200,
        "checkpoint_every": 0,
        "progress": False,
    }
    train(env_id=env_id, preset=preset, run_dir=run_dir, tensorboard=False, **common, **stop, **spec)
    rows = read_metrics(run_dir)["train"]
    spans = [(row, row["step"] - before["step"]) for before, row in pairwise(rows)]
    spans = [(row, span) for row, span in spans if start < row["step"] <= end]  # each row: steps since the last
    seconds = sum(span / row["steps_per_second"] for row, span in spans)
    counts = [int(row.get("threads", 0)) for row, _ in spans]
    result = {"steps_per_second": sum(span for _, span in spans) / seconds, "threads": counts, "window": [start, end]}
    first = int(spans[0][0]["step"] - spans[0][1])  # where the window's first row began
    if apex:  # the learner's updates over the same rows (apex.csv: step, updates, ...)
        with (run_dir / "apex.csv").open() as f:
            table = [line.split(",") for line in f.read().splitlines()[1:]]
        marks = {int(r[0]): int(r[1]) for r in table}
        last = int(spans[-1][0]["step"])
        if first in marks and last in marks:
            result["updates_per_second"] = (marks[last] - marks[first]) / seconds
    return result


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children so far (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


def _machine_cpu_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def measure(workload: str, setting: str, busy: int) -> dict[str, Any]:
    """One row: a fresh training process beside ``busy`` CPU-bound processes."""
    threads, extra_env = SETTINGS[setting]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
            out = Path(tmp) / "out.json"
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.bench_threads",
                "--measure-here",
                workload,
                str(threads),
                str(Path(tmp) / "run"),
                str(out),
            ]
            env = {**os.environ, **extra_env}
            ray_before = set(RAY_TMP.glob("session_2*"))
            machine0, wall0 = _machine_cpu_seconds(), time.perf_counter()
            child = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parent.parent)
            ours0 = _cpu_seconds([child.pid, *(h.pid for h in hogs), os.getpid()])
            code = child.wait()
            for session in set(RAY_TMP.glob("session_2*")) - ray_before:  # an Ape-X run's Ray logs: ours, gone
                from dueldqn.executors.ray_apex import remove_session  # imports Ray: only after an Ape-X row

                remove_session(session)
            machine1, wall1 = _machine_cpu_seconds(), time.perf_counter()
            if code != 0:
                raise RuntimeError(f"{workload} / {setting} / busy {busy}: the measured run failed ({code})")
            result = json.loads(out.read_text())
            ours1 = _cpu_seconds([*(h.pid for h in hogs), os.getpid()]) + float(result.get("cpu_seconds", 0.0))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    other = max(0.0, (machine1 - machine0) - (ours1 - ours0)) / (wall1 - wall0)
    return {"workload": workload, "setting": setting, "busy": busy, **result, "other_load": other}


def _key(row: dict[str, Any]) -> str:
    return f"{row['workload']} | {row['setting']} | {row['busy']}"


def report(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: one table per workload, a row per setting, a column per load; then the goal's ratios."""
    lines = []
    for workload in WORKLOADS:
        mine = [r for r in rows.values() if r["workload"] == workload]
        if not mine:
            continue
        loads = sorted({r["busy"] for r in mine})
        lines += [
            f"### {workload} ({WORKLOADS[workload]['env_id']}, env steps {WORKLOADS[workload]['window'][0]:,}"
            f"-{WORKLOADS[workload]['window'][1]:,})",
            "",
            "| setting | " + " | ".join(f"beside {b} busy" if b else "alone" for b in loads) + " |",
            "|---" * (len(loads) + 1) + "|",
        ]
        for setting in SETTINGS:
            cells = []
            for busy in loads:
                r = rows.get(f"{workload} | {setting} | {busy}")
                if r is None:
                    cells.append("-")
                    continue
                counts = sorted(set(r["threads"]))
                cell = f"{r['steps_per_second']:.1f}"
                if setting.startswith("auto"):
                    cell += f" (threads {'/'.join(map(str, counts))})"
                if r["other_load"] > 0.2:
                    cell += f" [other load {r['other_load']:.1f} cores]"
                cells.append(cell)
            if any(c != "-" for c in cells):
                lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        lines.append("")
        for busy in loads:
            auto = rows.get(f"{workload} | auto (default) | {busy}")
            one, two = rows.get(f"{workload} | 1 thread | {busy}"), rows.get(f"{workload} | 2 threads | {busy}")
            if auto and one and two:
                best = max(one["steps_per_second"], two["steps_per_second"])
                lines.append(
                    f"- {'alone' if busy == 0 else f'beside {busy} busy'}: auto / best of 1 and 2 threads = "
                    f"**{auto['steps_per_second'] / best:.2f}**; auto / 2 threads = "
                    f"{auto['steps_per_second'] / two['steps_per_second']:.2f}"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="these workloads only")
    parser.add_argument("--busy", nargs="+", type=int, default=[0, 1, 2], help="CPU-bound processes beside")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), help="these settings only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="raw rows (JSON), merged by key")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    parser.add_argument("--report-only", action="store_true", help="no measurement: the tables from --results")
    parser.add_argument("--measure-here", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_here:
        workload, threads, run_dir, out = args.measure_here
        result = measure_here(workload, int(threads), Path(run_dir))
        atomic_write_json(Path(out), {**result, "cpu_seconds": time.process_time()})  # since the process started
        return
    rows: dict[str, dict[str, Any]] = json.loads(args.results.read_text()) if args.results.exists() else {}
    for workload, settings in [] if args.report_only else PLAN:
        if args.only and workload not in args.only:
            continue
        for setting in settings:
            if args.settings and setting not in args.settings:
                continue
            for busy in args.busy:
                if "OMP" in setting and busy == 2:
                    continue
                row = measure(workload, setting, busy)
                rows[_key(row)] = row
                atomic_write_json(args.results, rows)
                print(
                    f"{_key(row)}: {row['steps_per_second']:.1f} env steps/s, threads "
                    f"{statistics.mode(row['threads']) if row['threads'] else '-'}, other load "
                    f"{row['other_load']:.2f}",
                    flush=True,
                )
    body = report(rows)
    print(body)
    if not args.no_write:
        write_section("threads", "Training speed on a shared machine: the thread policy", body)


if __name__ == "__main__":
    main()
