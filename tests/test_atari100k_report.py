"""The Atari 100k campaign report from synthetic result files with hand-checkable scores.

Human-normalised scores (HNS) are chosen to be 0, 0.5 or 1: Breakout's random and human scores are 1.7 and
30.5 (so 1.7, 16.1, 30.5), Boxing's 0.1 and 12.1 (0.1, 6.1, 12.1), Krull's 1598 and 2665.5. DrQ(eps)'s 25th
percentiles (of its 100 runs, rliable's data) are Breakout 14.718, Boxing 6.967, Krull 3,936.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import import_benchmark

from dueldqn.atari100k import GAMES, reference_runs

# benchmarks/ is not in the wheel: these tests are skipped, saying so, where the tests run without a checkout
campaign_module, bench = import_benchmark("atari100k_campaign"), import_benchmark("bench_atari100k")
SEEDS, plan = campaign_module.SEEDS, campaign_module.plan
OURS, load_results, main, report, summarize = bench.OURS, bench.load_results, bench.main, bench.report, bench.summarize


def write_result(
    results_dir: Path,
    game: str,
    seed: int,
    returns: list[float],
    train_s: float = 2400.0,
    eval_s: float = 300.0,
    at_once: int = 2,
    threads: int = 1,
) -> Path:
    """A result file with the campaign's schema (atari100k_campaign.write_result): ``returns`` (1 or 2 numbers)
    repeated over 100 evaluation games, the protocol's count."""
    returns = (returns * 100)[:100]
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{game}-s{seed}.json"
    result = {
        "game": game,
        "seed": seed,
        "env_id": f"ALE/{game}-v5",
        "preset": "atari100k",
        "commits": ["ad3d3b6"],
        "returns": returns,
        "lengths": [1000] * len(returns),
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "eval_epsilon": 0.001,
        "env_steps": 100_000,
        "updates": 100_000,
        "train_seconds": train_s,
        "eval_seconds": eval_s,
        "wall_seconds": train_s + eval_s,
        "updates_per_second": 100_000 / train_s,
        "env_steps_per_second": 40.0,
        "cpu_model": "Test CPU",
        "cpu_count": 2,
        "torch_threads": threads,
        "runs_at_once": at_once,
        "contended": f"{at_once} campaign run(s) at once on {threads} torch thread each, development work beside: "
        "wall times are contended",
        "python": "3.11",
        "torch": "2.13.0",
        "numpy": "2.4",
        "finished_at": "2026-12-06T00:00:00Z",
        "config": {},
    }
    path.write_text(json.dumps(result))
    return path


def partial_campaign(results_dir: Path) -> None:
    """Seven runs: Breakout HNS 1, 0.5, 0; Boxing 1, 0.5, 0; Krull 1 (seed 0 only)."""
    for seed, (breakout, boxing) in enumerate([([30.0, 31.0], [12.1]), ([16.1], [6.1]), ([1.7, 1.7], [0.0, 0.2])]):
        write_result(results_dir, "Breakout", seed, breakout)
        write_result(results_dir, "Boxing", seed, boxing)
    write_result(results_dir, "Krull", 0, [2665.5])


def test_the_campaign_plan_is_unchanged() -> None:
    runs = plan()
    assert runs[:6] == [(g, 0) for g in ("Alien", "Amidar", "Boxing", "Breakout", "Krull", "RoadRunner")]
    assert len(runs) == 78 and runs[18:21] == [("Assault", 0), ("Assault", 1), ("Assault", 2)]
    assert sorted(runs) == sorted((g, s) for g in GAMES for s in SEEDS)


def test_a_partial_campaign_gives_each_game_its_seeds_and_the_verdict_only_so_far(tmp_path: Path) -> None:
    partial_campaign(tmp_path)
    campaign = summarize(load_results(tmp_path), reps=300)
    title, body = report(campaign)
    assert title == "Atari 100k campaign (DuelDQN, DrQ(eps) recipe) - partial: 7 of 18 planned runs finished"
    # Breakout: seeds 30.5, 16.1, 1.7; mean 16.1 +- 14.4 (ddof 1), HNS 0.5, at or above DrQ(eps)'s p25 14.718
    assert "| Breakout | 3 | s0 30.5, s1 16.1, s2 1.7 | **16.1** +- 14.4 | 0.500 | 13.5 / 14.7 / 16.2 / 22.7 |" in body
    assert body.count("| yes |") == 1  # Breakout; Boxing's 6.1 < 6.967 and Krull's 2,666 < 3,936 fail
    assert "| Boxing | 3 | s0 12.1, s1 6.1, s2 0.1 | **6.1** +- 6.0 | 0.500 |" in body and "| **no** |" in body
    assert "| Krull | 1 | s0 2,666 | **2,666** | 1.000 |" in body
    assert "| Alien | 0 | - | - | - |" in body and "| RoadRunner | 0 |" in body  # the plan's games not run yet
    # our 7 HNS cells 1, .5, 0, 1, .5, 0, 1: IQM cuts one at each end, (0 + .5 + .5 + 1 + 1) / 5 = 0.6;
    # game means .5, .5, 1: median 0.5, mean 2/3; the IQM weighs each game the same (3, 3 and 1 runs): 2/9 of
    # the weight at 0, 2/9 at .5, 5/9 at 1, so the middle half is .5 over 7/36 and 1 over 11/36
    ours = campaign.aggregates[OURS]
    iqm = (0.5 * 7 + 11) / 18
    assert (ours["IQM"].point, ours["median"].point, ours["mean"].point) == pytest.approx((iqm, 0.5, 2 / 3))
    assert f"| {OURS} | 3, 3, 1 | {iqm:.3f} [" in body and "so our IQM weighs every game the same" in body
    assert campaign.aggregate_games == ["Boxing", "Breakout", "Krull"]
    drq = np.stack([reference_runs("DrQ(eps)", g) for g in ("Boxing", "Breakout", "Krull")])
    assert campaign.aggregates["DrQ(eps)"]["mean"].point == pytest.approx(
        np.mean([(drq[0].mean() - 0.1) / 12, (drq[1].mean() - 1.7) / 28.8, (drq[2].mean() - 1598) / 1067.5])
    )
    assert "P(ours > DrQ(eps)) on the same games: **" in body
    assert "**not met so far, on 7 of the 18 planned runs (3 of 6 games)**" in body
    assert "below DrQ(eps) p25: Boxing, Krull" in body
    # seven runs of 2,400 s training and 300 s evaluation, two at a time: 45.0 min each, a run every 22.5 min of
    # the machine, 100,000 updates / 2,400 s; none had the machine alone, so the goal is not judged
    assert "| 2 | 1 | 7 | 45.0 (45.0-45.0) | 22.5 | 41.7 |" in body
    assert "On the goal, no run has had the machine alone yet, so the goal is not judged." in body
    assert "CPU: Test CPU (7 runs)" in body and "wall times are contended." in body


def test_a_finished_campaign_gets_a_verdict_and_the_median_runs_time(tmp_path: Path) -> None:
    """All 18 runs, each at DrQ(eps)'s 90th percentile of its game, run i taking 45 + i minutes."""
    for i, (game, seed) in enumerate(plan()[:18]):
        p90 = float(np.percentile(reference_runs("DrQ(eps)", game), 90))
        write_result(tmp_path, game, seed, [p90], train_s=2400.0 + 60 * i, eval_s=300.0)
    title, body = report(summarize(load_results(tmp_path), reps=300))
    assert title == "Atari 100k campaign (DuelDQN, DrQ(eps) recipe)"
    assert body.count("| yes |") == 6 and "IQM" in body
    assert "): **met** (IQM " in body and "every game's mean >= DrQ(eps) p25" in body
    # 45..62 min two at a time: the median is (53 + 54) / 2 = 53.5 min, 26.8 of the machine; updates/s the mean
    # of 100,000 / 2,880 and / 2,940. Runs beside others are shown, never judged against the goal
    rate = np.median([100_000 / 2880, 100_000 / 2940])
    assert f"| 2 | 1 | 18 | 53.5 (45.0-62.0) | 26.8 | {rate:.1f} |" in body
    assert "no run has had the machine alone yet" in body
    # runs alone on 2 threads: 40 and 50 min, median 45.0, on the goal; a third of 60 min puts the median over it
    write_result(tmp_path, "Assault", 1, [222.4], train_s=2100.0, eval_s=300.0, at_once=1, threads=2)
    write_result(tmp_path, "Assault", 2, [222.4], train_s=2700.0, eval_s=300.0, at_once=1, threads=2)
    _, body = report(summarize(load_results(tmp_path), reps=300))
    assert "| 1 | 2 | 2 | 45.0 (40.0-50.0) | 45.0 |" in body
    assert "the median run alone took **45.0 min** (2 run(s)), 0.0 min within the goal" in body
    write_result(tmp_path, "Asterix", 0, [210.0], train_s=3300.0, eval_s=300.0, at_once=1, threads=2)
    _, body = report(summarize(load_results(tmp_path), reps=300))
    assert "the median run alone took **50.0 min** (3 run(s)), 5.0 min over the goal" in body
    for name in ("Assault-s1.json", "Assault-s2.json", "Asterix-s0.json"):
        (tmp_path / name).unlink()
    # a game outside the plan's six joins the aggregates (7 games) but not the verdict (6)
    write_result(tmp_path, "Assault", 0, [222.4])
    campaign = summarize(load_results(tmp_path), reps=300)
    _, body = report(campaign)
    assert len(campaign.aggregate_games) == 7 and "| Assault | 1 | s0 222.4 | **222.4** | 0.000 |" in body
    assert "on the same 6 games:" in body


def test_the_intervals_are_compared_only_where_ours_has_one() -> None:
    ours, drq = bench.Estimate(0.8, 0.7, 0.9), bench.Estimate(0.6, 0.55, 0.65)
    assert bench._compare(ours, drq, [1, 1]) == (
        "with one run per game ours has no interval, so nothing separates the two yet"
    )
    assert bench._compare(ours, drq, [3, 3]) == "ours lies above DrQ(eps)'s interval"
    assert bench._compare(drq, ours, [3, 3]) == "ours lies below DrQ(eps)'s interval"
    assert bench._compare(ours, bench.Estimate(0.7, 0.6, 0.75), [3, 3]).startswith("the intervals overlap")
    assert bench._compare(ours, drq, [3, 2]) == (
        "ours lies above DrQ(eps)'s interval (some games have fewer than the plan's 3 runs, so our interval is "
        "narrower than it will be: not a finding yet)"
    )


def test_readme_says_what_the_intervals_show(tmp_path: Path) -> None:
    partial_campaign(tmp_path)
    campaign = summarize(load_results(tmp_path), reps=300)
    text = bench.readme_summary(campaign)
    flat = " ".join(text.split())
    assert '**Partial: 7 of 18 runs have finished**, so the verdict below reads "so far".' in flat
    # per game: each seed, the mean over seeds, DrQ(eps)'s p25 and median, and the p25 test (module docstring)
    assert "| Breakout | s0 30.5, s1 16.1, s2 1.7 | 16.1 | 14.7 / 16.2 | yes |" in text
    assert "| Boxing | s0 12.1, s1 6.1, s2 0.1 | 6.1 | 7.0 / 8.5 | no |" in text
    assert "| Krull | s0 2,666 | 2,666 | 3,936 / 4,411 | no |" in text and "| Alien |" not in text
    ours, drq = bench.goal(campaign).ours, bench.goal(campaign).drq
    assert f"ours {ours.point:.3f} [{ours.low:.3f}, {ours.high:.3f}] against DrQ(eps)'s {drq.point:.3f}" in flat
    assert "(some games have fewer than the plan's 3 runs, so our interval is narrower" in flat  # Krull: one run
    assert (
        "P(ours > DrQ(eps)) " in flat and "is **not met so far, on 7 of the 18 planned runs (3 of 6 games)**." in flat
    )
    assert max(len(line) for line in text.splitlines() if not line.startswith("|")) <= 110


def test_the_readme_block_is_replaced_between_its_markers_only(tmp_path: Path) -> None:
    write_readme_block = import_benchmark("_report").write_readme_block
    readme = tmp_path / "README.md"
    start, end = "<!-- --8<-- [start:atari100k] -->", "<!-- --8<-- [end:atari100k] -->"
    readme.write_text(f"# title\n\n{start}\nold text\n{end}\n\n![figure](x.png)\n")
    write_readme_block("atari100k", "new text\n\n| a |", readme)
    assert readme.read_text() == f"# title\n\n{start}\nnew text\n\n| a |\n{end}\n\n![figure](x.png)\n"
    assert not list(tmp_path.glob("*.tmp"))
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match=r"expected one <!-- --8<-- \[start:atari100k\] -->"):
        write_readme_block("atari100k", "text", readme)
    assert readme.read_text() == "# no markers\n"


def test_the_report_command_reads_only_result_files_and_draws_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, figures = tmp_path / "results", tmp_path / "figures"
    partial_campaign(results)
    (results / "notes.txt").write_text("not a result")
    main(["--report-only", "--results-dir", str(results), "--figures-dir", str(figures), "--reps", "200", "--no-write"])
    out = capsys.readouterr().out
    assert out.startswith("## Atari 100k campaign (DuelDQN, DrQ(eps) recipe) - partial: 7 of 18")
    assert (figures / "atari100k_campaign.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    main(["--report-only", "--results-dir", str(empty), "--figures-dir", str(figures), "--reps", "200", "--no-write"])
    out = capsys.readouterr().out
    assert "partial: 0 of 18 planned runs finished" in out and "the plan's 6 games (no run has finished yet)" in out
    assert "| DrQ(eps) | 100 |" in out and OURS not in out and "Goal" not in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("returns"), "field 'returns' must be list"),
        (lambda d: d.update(returns=[]), "non-empty list of finite numbers"),
        (lambda d: d.update(game="Tetris"), "'Tetris' is not an Atari 100k game"),
        (lambda d: d.update(seed=1), "must be named Breakout-s1.json"),
        (lambda d: d.update(mean_return=99.0), "is not the mean of its returns"),
        (lambda d: d.update(train_seconds="long"), "field 'train_seconds' must be int or float or null"),
    ],
)
def test_a_bad_result_file_is_refused_with_its_name(tmp_path: Path, change: object, message: str) -> None:
    path = write_result(tmp_path, "Breakout", 0, [10.0, 20.0])
    data = json.loads(path.read_text())
    change(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as refused:
        load_results(tmp_path)
    assert str(path) in str(refused.value)


def test_a_missing_results_dir_is_refused_at_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--report-only", "--results-dir", str(tmp_path / "nowhere"), "--no-write"])
    assert exited.value.code == 2 and "results directory" in capsys.readouterr().err
