"""The Atari 100k campaign's own command, run for real on a smoke-sized run: the result file it writes is what the
report reads, with the numbers of the run directory it came from.

The report's tests (test_atari100k_report.py) write result files by hand; this one checks that the campaign's
``write_result`` still finds every field in what ``train`` writes (``summary.json``, ``eval.json``), which no type
checker sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import HANG_SECONDS, SOURCE_ROOT, import_benchmark, subprocess_env

pytest.importorskip("ale_py")
campaign_module, bench = import_benchmark("atari100k_campaign"), import_benchmark("bench_atari100k")
pytestmark = pytest.mark.slow  # Atari training and a 1-game evaluation in a subprocess

STEPS = 1_650  # 50 steps past the preset's learning_starts (1,600), so the run makes updates


def campaign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.atari100k_campaign", *args],
        cwd=SOURCE_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )


def test_a_smoke_run_writes_the_result_file_the_report_reads(tmp_path: Path) -> None:
    runs, results = tmp_path / "runs", tmp_path / "results"
    where = ["--runs-dir", str(runs), "--results-dir", str(results)]
    done = campaign(*where, "--limit", "1", "--jobs", "1", f"--total-steps={STEPS}", "--eval-episodes=1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Alien seed 0 ended with exit code 0" in done.stdout  # the plan's first run

    result = json.loads((results / "Alien-s0.json").read_text())
    run_dir = runs / "Alien__s0"
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert (result["game"], result["seed"], result["env_id"], result["preset"]) == (
        "Alien",
        0,
        "ALE/Alien-v5",
        "atari100k",
    )
    assert result["returns"] == evaluation["returns"] and len(result["returns"]) == result["episodes"] == 1
    assert result["mean_return"] == result["returns"][0] and result["std_return"] == 0.0
    assert result["env_steps"] == summary["total_steps"] == result["config"]["total_steps"] == STEPS
    assert result["updates"] == summary["updates"] > 0
    assert result["train_seconds"] == summary["train_seconds"] and result["eval_seconds"] == summary["eval_seconds"]
    assert result["updates_per_second"] == pytest.approx(result["updates"] / result["train_seconds"])
    assert result["torch_threads"] == result["config"]["torch_threads"] == campaign_module.THREADS
    assert result["runs_at_once"] == 1 and result["eval_epsilon"] == 0.001
    # the versions a game's frames depend on, as installed here (the atari extra is in dev)
    assert (result["ale_py"], result["gymnasium"]) == (metadata.version("ale-py"), metadata.version("gymnasium"))
    assert result["commits"] == [campaign_module.code_commit()]  # this checkout's commit (+dirty if edited)

    (loaded,) = bench.load_results(results)  # the report's reader accepts what the campaign wrote
    assert (loaded.game, loaded.seed, loaded.score, loaded.env_steps) == ("Alien", 0, result["mean_return"], STEPS)

    status = campaign(*where, "--status")
    assert status.returncode == 0
    first, second = status.stdout.splitlines()[:2]
    assert first.split() == ["Alien", "s0:", "finished,", f"{result['mean_return']:.1f}", "over", "1", "games"]
    assert second.split() == ["Amidar", "s0:", "not", "started"]
