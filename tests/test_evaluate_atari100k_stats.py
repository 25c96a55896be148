"""Atari 100k aggregate statistics on hand-computed cases: HNS, IQM, stratified bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.atari100k_stats import (
    DRQ_EPS_PERCENTILES,
    PUBLISHED,
    human_normalized,
    iqm,
    stratified_bootstrap_ci,
)


def test_human_normalised_scores_of_the_published_tables() -> None:
    assert human_normalized("Breakout", 1.7) == 0.0 and human_normalized("Breakout", 30.5) == pytest.approx(1.0)
    # DrQ(eps)'s per-game medians on the four benchmark games: (16.2-1.7)/28.8, 8.4/12, 10395.5/7833.5, 2813/1068
    medians = [human_normalized(g, DRQ_EPS_PERCENTILES[g][1]) for g in ("Breakout", "Boxing", "RoadRunner", "Krull")]
    assert medians == pytest.approx([0.50347, 0.7, 1.32706, 2.63390], abs=1e-5)
    assert np.mean(medians) == pytest.approx(1.29111, abs=1e-5)
    assert len(PUBLISHED) == 26
    with pytest.raises(ValueError, match="no published random and human scores for 'Tetris'"):
        human_normalized("Tetris", 1.0)


def test_iqm_cuts_a_quarter_at_each_end_as_scipy_trim_mean() -> None:
    assert iqm(np.array([8, 1, 7, 2, 6, 3, 5, 4])) == 4.5  # mean of 3, 4, 5, 6
    assert iqm(np.arange(1, 11).reshape(2, 5)) == 5.5  # n = 10: int(2.5) = 2 cut at each end, mean of 3..8
    assert iqm(np.array([1.0, 100.0, 3.0])) == pytest.approx(104 / 3)  # n = 3: nothing cut
    assert iqm(np.array([0.0, 0.0, 0.0, 1000.0])) == 0.0  # the outlier is cut


def test_stratified_bootstrap_on_a_case_with_a_known_distribution() -> None:
    """Game A's runs score 0 and 1, game B's 0 and 0; the statistic is the mean of the 4 scores.

    Resampling B gives 0 always; resampling A's two runs gives a sum 0, 1 or 2 with probability
    1/4, 1/2, 1/4: the replicates are 0, 0.25, 0.5 with those probabilities. The central 95% is
    [0, 0.5]; the central 40% (percentiles 30 and 70) is 0.25 alone.
    """
    scores_RG = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert stratified_bootstrap_ci(scores_RG, np.mean, reps=4_000) == (0.25, 0.0, 0.5)
    assert stratified_bootstrap_ci(scores_RG, np.mean, reps=4_000, confidence=0.4) == (0.25, 0.25, 0.25)


def test_stratified_bootstrap_keeps_games_apart() -> None:
    """One run per game: every replicate is the data itself, so the interval is the point (an i.i.d.
    bootstrap over all cells would mix the games and widen it)."""
    scores_RG = np.array([[0.1, 0.5, 2.0, 7.0]])
    point, low, high = stratified_bootstrap_ci(scores_RG, iqm, reps=200)
    assert point == low == high == pytest.approx(1.25)  # n = 4: one cut at each end, mean of 0.5 and 2.0
    with pytest.raises(ValueError, match=r"\(runs, games\) matrix"):
        stratified_bootstrap_ci(np.array([1.0, 2.0]), iqm)


def test_the_report_compares_each_game_with_drq_eps_and_labels_partial_results() -> None:
    from benchmarks.bench_atari100k import report

    def run(seed: int, score: float) -> dict[str, object]:
        return {"seed": seed, "score": score, "episodes": 100, "steps": 100_000, "wall_seconds": 5400.0, "curve": []}

    found = {"Breakout": [run(0, 20.0), run(1, 14.0)], "Boxing": [run(0, 9.0), run(1, 4.0)], "Krull": []}
    title, body = report(found, wanted=6, reps=500)
    assert title == "Atari 100k (DuelDQN, DrQ(eps) recipe) - partial: 4 of 6 runs finished"
    # Breakout: mean 17, HNS (17 - 1.7) / 28.8 = 0.531; both seeds >= p10 13.5. Boxing: seed 1 is below p10 5.7.
    breakout = "| Breakout | 2 | **17.0** (20.0, 14.0) | 0.531 | 1.7 | 9.2 | 19.8 | 13.5 / 16.2 / 22.7 | 19.6 | yes |"
    assert breakout + " 1.50, 1.50 |" in body
    assert "| Boxing | 2 | **6.5** (9.0, 4.0) | 0.533 |" in body and "| 35.7 | no |" in body
    assert "| Krull | 0 | - |" in body
    # mean HNS (0.53125 + 0.5333) / 2 = 0.532 against DrQ(eps)'s medians (0.50347 + 0.7) / 2 = 0.602
    assert "**0.532**" in body and "give 0.602" in body
    assert "**not met so far, over 2 of 3 games; no verdict until all are run**" in body  # Krull is missing
    _, whole = report({g: rs for g, rs in found.items() if rs}, wanted=4, reps=500)
    assert "**not met**" in whole and "[95% CI" in whole
    _, one_seed = report({g: rs[:1] for g, rs in found.items() if rs}, wanted=2, reps=500)
    assert "IQM of HNS over 1 seed(s) x 2 games" in one_seed and "no confidence interval" in one_seed
    assert "IQM of HNS over 2 seed(s) x 2 games" in body
