"""The GPU check's smoke mode on the CPU: every part runs and the JSON holds sane numbers, so the script cannot rot.

Its CUDA-only lines (pinned buffers, ``torch.cuda.synchronize``, the driver query) run only on a GPU.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import import_benchmark

gpu_check = import_benchmark("gpu_check")  # benchmarks/ is not in the wheel: skipped (saying so) without a checkout
SMOKE, TRAINING_VARIANT, UPDATE_VARIANTS = gpu_check.SMOKE, gpu_check.TRAINING_VARIANT, gpu_check.UPDATE_VARIANTS
main, projected_seconds = gpu_check.main, gpu_check.projected_seconds


def _positive(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    pytest.importorskip("ale_py", reason="the Breakout part needs ale-py: pip install dueldqn[atari]")
    pytest.importorskip("cv2", reason="AtariPreprocessing needs opencv: pip install dueldqn[atari]")
    out_dir = tmp_path_factory.mktemp("gpu_check")
    scratch = out_dir / "tmp"  # the runs' temporary directories go here, to check they are removed
    scratch.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        status = main(["--device", "cpu", "--smoke", "--no-write", "--seed", "3", "--out", str(out_dir / "check.json")])
    finally:
        tempfile.tempdir = saved
    assert status == 0
    assert [p for p in scratch.iterdir() if p.name.startswith("gpu_check_")] == []  # both runs' directories removed
    assert sorted(p.name for p in out_dir.iterdir()) == ["check.json", "tmp"]  # written atomically: no temp file
    return json.loads((out_dir / "check.json").read_text()), out_dir


def test_smoke_report_has_every_part_and_no_error(report: tuple[dict[str, Any], Path]) -> None:
    data, out_dir = report
    assert data["errors"] == {}
    assert (data["mode"], data["device"], data["seed"], data["out"]) == ("smoke", "cpu", 3, str(out_dir / "check.json"))
    assert "--smoke" in data["command"] and _positive(data["seconds"])
    versions = data["versions"]
    assert versions["torch"] == torch.__version__ and versions["python"]
    assert versions["gpu"] is None and versions["driver"] is None  # no GPU here
    model = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    assert versions["machine"].startswith(model)


def test_update_timings_cover_every_batch_and_variant(report: tuple[dict[str, Any], Path]) -> None:
    rows = report[0]["update"]
    assert [(r["batch"], r["variant"]) for r in rows] == [(b, v) for b in SMOKE.batches for v in UPDATE_VARIANTS]
    for r in rows:
        assert all(_positive(r[k]) for k in ("ms_median", "ms_min", "ms_max", "updates_per_second"))
        assert r["ms_min"] <= r["ms_median"] <= r["ms_max"] and r["repeats"] == SMOKE.repeats
        assert r["updates_per_second"] == pytest.approx(1e3 / r["ms_median"])


def test_act_and_copy_timings(report: tuple[dict[str, Any], Path]) -> None:
    data = report[0]
    assert [r["envs"] for r in data["act"]] == [1, 16]
    assert all(_positive(r["ms_median"]) and r["ms_min"] <= r["ms_median"] <= r["ms_max"] for r in data["act"])
    copies = data["copy"]
    timed = [r for r in copies if "skipped" not in r]
    assert [(r["batch"], r["mode"]) for r in timed] == [(b, "pageable, blocking") for b in SMOKE.batches]
    for r in timed:
        assert r["megabytes"] == pytest.approx(2 * r["batch"] * 4 * 84 * 84 / 1e6)  # obs and next_obs, uint8
        assert _positive(r["ms_median"]) and r["gigabytes_per_second"] == pytest.approx(r["megabytes"] / r["ms_median"])
    assert [r["batch"] for r in copies if "skipped" in r] == list(SMOKE.batches)  # pinned memory: CUDA only


def test_runs_took_the_steps_asked(report: tuple[dict[str, Any], Path]) -> None:
    cartpole, breakout = report[0]["cartpole"], report[0]["breakout"]
    assert cartpole["total_steps"] == cartpole["steps_asked"] == SMOKE.cartpole_steps and cartpole["seed"] == 3
    assert cartpole["updates"] > 0 and _positive(cartpole["steps_per_second"])
    assert 0 <= cartpole["eval_mean_return"] <= 500 and cartpole["eval_episodes"] == 1
    assert cartpole["learned_threshold"] == 475.0
    assert cartpole["learned"] is (cartpole["eval_mean_return"] >= 475.0)
    assert breakout["total_steps"] == breakout["steps_asked"] == SMOKE.breakout_steps and breakout["seed"] == 3
    warmup = SMOKE.breakout_overrides["learning_starts"]
    assert breakout["learning_starts"] == warmup and breakout["updates_per_step"] == 1.0  # atari100k: 1 per step
    assert 0 < breakout["updates"] <= SMOKE.breakout_steps - warmup + 1
    assert breakout["updates_per_second"] == pytest.approx(breakout["updates"] / breakout["train_seconds"])
    assert _positive(breakout["steps_per_second"]) and _positive(breakout["steps_per_second_after_warmup"])
    assert breakout["updates_per_second_after_warmup"] == breakout["steps_per_second_after_warmup"]


def test_projection_is_the_formula_on_the_measured_times(report: tuple[dict[str, Any], Path]) -> None:
    data = report[0]
    projection = data["projection"]
    update_ms = next(
        r["ms_median"]
        for r in data["update"]
        if r["variant"] == TRAINING_VARIANT and r["batch"] == data["breakout"]["batch_size"]
    )
    assert projection["t_update_ms"] == pytest.approx(update_ms) and projection["t_other_ms"] >= 0
    runs = projection["runs"]
    assert (runs["atari100k"]["total_steps"], runs["breakout"]["total_steps"]) == (100_000, 10_000_000)
    assert (runs["atari100k"]["updates_per_step"], runs["breakout"]["updates_per_step"]) == (1.0, 0.25)
    for r in runs.values():
        expected = projected_seconds(
            r["total_steps"],
            r["learning_starts"],
            r["updates_per_step"],
            projection["t_other_ms"] / 1e3,
            projection["t_update_ms"] / 1e3,
        )
        assert _positive(r["seconds"]) and r["seconds"] == pytest.approx(expected)
        assert r["hours"] == pytest.approx(r["seconds"] / 3600)


def test_projected_seconds_by_hand() -> None:
    # 100 steps, updates from step 20 on, one every 4 steps: 100 * 1 ms + 80 * 0.25 * 4 ms = 0.18 s
    assert projected_seconds(100, 20, 0.25, 1e-3, 4e-3) == pytest.approx(0.18)
    assert projected_seconds(10, 20, 1.0, 1e-3, 4e-3) == pytest.approx(0.01)  # all warm-up: no update


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "x.json")]) == 2
    assert "torch sees no CUDA GPU; use --device cpu --smoke" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_from_json_writes_the_section_with_the_machine_it_ran_on(
    report: tuple[dict[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report_module = import_benchmark("_report")
    data = report[0]
    data = {**data, "versions": {**data["versions"], "machine": "Lent GPU box (AMD EPYC 9999), 16 cores"}}
    saved = tmp_path / "gpu_check.json"
    saved.write_text(json.dumps(data))
    benchmarks_md = tmp_path / "BENCHMARKS.md"
    benchmarks_md.write_text("# Benchmarks\n\n<!-- begin other -->\nkept\n<!-- end other -->\n")
    monkeypatch.setattr(report_module, "BENCHMARKS_MD", benchmarks_md)
    assert main(["--from-json", str(saved)]) == 0
    text = benchmarks_md.read_text()
    assert "<!-- begin other -->\nkept\n<!-- end other -->" in text
    section = text[text.index("<!-- begin gpu-check -->") : text.index("<!-- end gpu-check -->")]
    assert "## GPU check (cpu, smoke)" in section
    assert f"Command: `{data['command']}`" in section and "Machine: Lent GPU box (AMD EPYC 9999)" in section
    for row in data["update"]:  # every update timing is in the table
        assert f"| {row['variant']} | {row['batch']} | {row['ms_median']:.3f} " in section
    assert f"{data['cartpole']['total_steps']:,} steps" in section and "Projection: T = steps * t_other" in section
