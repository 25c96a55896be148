"""rliable's aggregate statistics on hand-computed cases, the Atari 100k reference data, and both against the
numbers published from them (and against rliable itself, where it is installed)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import pytest

from dueldqn.aggregates import (
    improvement_K,
    iqm,
    iqm_K,
    mean_K,
    median_K,
    point,
    stratified_bootstrap_ci,
)
from dueldqn.atari100k import AGENTS, GAMES, human_normalized, human_score, random_score, reference_runs

DATA = resources.files("dueldqn") / "data" / "atari100k"

# What benchmarks/atari100k_stats.py held, copied by hand from research/atari-100k.md before the data files
# came: game -> (random, human, DER mean, DrQ(eps) mean, SPR mean), and DrQ(eps)'s p10 / p50 / p90.
HAND_COPIED_MEANS = {
    "Alien": (227.8, 7128, 802.3, 865.2, 841.9),
    "Amidar": (5.8, 1720, 125.9, 137.8, 179.7),
    "Assault": (222.4, 742.0, 561.5, 579.6, 565.6),
    "Asterix": (210.0, 8503, 535.4, 763.6, 962.5),
    "BankHeist": (14.2, 753.1, 185.5, 232.9, 345.4),
    "BattleZone": (2360, 37188, 8977, 10165, 14834),
    "Boxing": (0.1, 12.1, -0.3, 9.0, 35.7),
    "Breakout": (1.7, 30.5, 9.2, 19.8, 19.6),
    "ChopperCommand": (811.0, 7388, 925.9, 844.6, 946.3),
    "CrazyClimber": (10780, 35829, 34509, 21539, 36700),
    "DemonAttack": (152.1, 1971, 627.6, 1322, 517.6),
    "Freeway": (0.0, 29.6, 20.9, 20.3, 19.3),
    "Frostbite": (65.2, 4335, 871.0, 1014, 1171),
    "Gopher": (257.6, 2412, 467.0, 621.6, 660.6),
    "Hero": (1027, 30826, 6226, 4168, 5859),
    "Jamesbond": (29.0, 302.8, 275.7, 349.1, 366.5),
    "Kangaroo": (52.0, 3035, 581.7, 1088, 3617),
    "Krull": (1598, 2666, 3257, 4402, 3682),
    "KungFuMaster": (258.5, 22736, 6580, 11467, 14783),
    "MsPacman": (307.3, 6952, 1187, 1218, 1318),
    "Pong": (-20.7, 14.6, -9.7, -9.1, -5.4),
    "PrivateEye": (24.9, 69571, 72.8, 3.5, 86.0),
    "Qbert": (163.9, 13455, 1774, 1811, 866.3),
    "RoadRunner": (11.5, 7845, 11843, 11211, 12213),
    "Seaquest": (68.4, 42055, 304.6, 352.3, 558.1),
    "UpNDown": (533.4, 11693, 3075, 4325, 10859),
}
HAND_COPIED_DRQ_EPS_PERCENTILES = {
    "Breakout": (13.5, 16.2, 22.7),
    "Pong": (-17.3, -11.0, 8.5),
    "Boxing": (5.7, 8.5, 13.9),
    "Freeway": (0.0, 27.7, 29.7),
    "Krull": (3521, 4411, 5224),
    "KungFuMaster": (3716, 10125, 20417),
    "RoadRunner": (6273, 10407, 16447),
    "CrazyClimber": (16379, 22342, 26508),
    "Kangaroo": (506, 648, 1632),
    "Jamesbond": (277, 351, 421),
    "Seaquest": (261, 346, 441),
    "MsPacman": (819, 1151, 1703),
    "Qbert": (701, 1482, 3462),
}


def _printed_as(computed: float, copied: float) -> bool:
    """``computed`` rounds to ``copied``: to a whole number where ``copied`` is one, else to one decimal."""
    return abs(computed - copied) <= (0.5 if copied == round(copied) else 0.05) + 1e-9


def _hns(agent: str, games: tuple[str, ...] | list[str] = GAMES) -> np.ndarray:
    """``agent``'s (100 runs, games) matrix of human-normalised scores."""
    return np.stack([human_normalized(g, reference_runs(agent, g)) for g in games], axis=1)


def test_the_reference_files_are_their_sources_byte_for_byte() -> None:
    sources = json.loads((DATA / "sources.json").read_text())["files"]
    assert sorted(sources) == ["DER.json", "DrQ_eps.json", "HUMAN.json", "RANDOM.json", "SPR.json"]
    for name, source in sources.items():
        data = (DATA / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == source["blob"], name  # git hash-object
        assert len(source["commit"]) == 40 and source["repository"] and source["path"].endswith(".json")


def test_the_reference_data_give_the_hand_copied_means_and_percentiles() -> None:
    assert sorted(GAMES) == list(GAMES) == sorted(HAND_COPIED_MEANS) and len(GAMES) == 26
    for game, (random, human, der, drq, spr) in HAND_COPIED_MEANS.items():
        assert all(reference_runs(agent, game).shape == (100,) for agent in AGENTS)
        for computed, copied in [
            (random_score(game), random),
            (human_score(game), human),
            (reference_runs("DER", game).mean(), der),
            (reference_runs("DrQ(eps)", game).mean(), drq),
            (reference_runs("SPR", game).mean(), spr),
        ]:
            assert _printed_as(computed, copied), (game, computed, copied)
    for game, percentiles in HAND_COPIED_DRQ_EPS_PERCENTILES.items():
        ours = np.percentile(reference_runs("DrQ(eps)", game), [10, 50, 90])
        assert all(_printed_as(c, h) for c, h in zip(ours, percentiles, strict=True)), (game, ours, percentiles)
    with pytest.raises(ValueError, match="'Tetris' is not an Atari 100k game"):
        human_normalized("Tetris", 1.0)
    with pytest.raises(ValueError, match="no reference runs for 'DQN'"):
        reference_runs("DQN", "Pong")


def test_human_normalised_scores() -> None:
    assert human_normalized("Breakout", 1.7) == 0.0 and human_normalized("Breakout", 30.5) == pytest.approx(1.0)
    # Krull: (4411.38 - 1598) / (2665.5 - 1598), DrQ(eps)'s median; the hand-copied table rounded human to 2666
    assert human_normalized("Krull", 4411.38) == pytest.approx(2813.38 / 1067.5)
    medians = [human_normalized(g, np.median(reference_runs("DrQ(eps)", g))) for g in ("Breakout", "Boxing")]
    assert medians == pytest.approx([(16.16 - 1.7) / 28.8, (8.465 - 0.1) / 12.0], abs=1e-4)


def test_iqm_cuts_a_quarter_at_each_end_as_scipy_trim_mean() -> None:
    assert iqm(np.array([8, 1, 7, 2, 6, 3, 5, 4])) == 4.5  # mean of 3, 4, 5, 6
    assert iqm(np.arange(1, 11).reshape(2, 5)) == 5.5  # n = 10: int(2.5) = 2 cut at each end, mean of 3..8
    assert iqm(np.array([1.0, 100.0, 3.0])) == pytest.approx(104 / 3)  # n = 3: nothing cut
    assert iqm(np.array([0.0, 0.0, 0.0, 1000.0])) == 0.0  # the outlier is cut


def test_iqm_weighs_every_game_the_same_where_their_runs_differ() -> None:
    # games of 2 and 3 runs: cells 0, 1 weigh 1/4 each, 2, 3, 9 weigh 1/6. The bottom quarter is the 0, the
    # top quarter the 9 and 1/12 of the 3; left: 1 (1/4), 2 (1/6), 3 (1/12), mean (1/4 + 2/6 + 3/12) / (1/2)
    assert point(iqm_K, [[0.0, 1.0], [2.0, 3.0, 9.0]]) == pytest.approx(5 / 3)
    # a game's runs given twice weigh what they weighed once; the same runs in every game is the plain cut
    assert point(iqm_K, [[0.0, 1.0, 0.0, 1.0], [2.0, 3.0, 9.0]]) == pytest.approx(5 / 3)
    assert point(iqm_K, [[0.0, 1.0, 5.0], [2.0, 3.0, 9.0]]) == iqm(np.array([0.0, 1.0, 5.0, 2.0, 3.0, 9.0]))
    # the report's partial campaign (tests/test_atari100k_report.py): HNS 1, .5, 0 in two games and 1 in a third
    # weigh 2/9 at 0, 2/9 at .5 and 5/9 at 1; the middle half is .5 over 7/36 and 1 over 11/36
    assert point(iqm_K, [[1.0, 0.5, 0.0], [1.0, 0.5, 0.0], [1.0]]) == pytest.approx((0.5 * 7 + 11) / 18)
    # replicates: each row of a (K, R) batch on its own
    batch = iqm_K([np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([[2.0, 3.0, 9.0], [1.0, 1.0, 1.0]])])
    assert batch == pytest.approx([5 / 3, 1.0])


def test_mean_and_median_are_over_each_games_mean() -> None:
    scores = [[0.0, 2.0], [10.0], [3.0, 4.0, 5.0]]  # game means 1, 10, 4
    assert point(mean_K, scores) == 5.0 and point(median_K, scores) == 4.0
    assert point(mean_K, np.array([[1.0, 2.0], [3.0, 6.0]])) == 3.0  # a (runs, games) matrix: means 2 and 4


def test_probability_of_improvement_counts_pairs_and_half_the_ties() -> None:
    """Game 1: X (1, 3) against Y (2, 2): 2 of 4 pairs above. Game 2: X (5) against Y (5, 4): one tie, one above,
    (0.5 + 1) / 2 = 0.75. Averaged over the games: 0.625."""
    x, y = [[1.0, 3.0], [5.0]], [[2.0, 2.0], [5.0, 4.0]]
    assert point(improvement_K, x, y) == 0.625
    assert point(improvement_K, y, x) == 0.375  # P(X > Y) + P(Y > X) = 1 with ties halved
    assert point(improvement_K, x, x) == 0.5
    with pytest.raises(ValueError, match="same games"):
        stratified_bootstrap_ci(improvement_K, x, [[1.0]], reps=10)


def test_stratified_bootstrap_on_a_case_with_a_known_distribution() -> None:
    """Game A's runs score 0 and 1, game B's 0 and 0; the statistic is the mean of the game means.

    Resampling B gives 0 always; resampling A's two runs gives a mean 0, 0.5 or 1 with probability
    1/4, 1/2, 1/4: the replicates are 0, 0.25, 0.5 with those probabilities. The central 95% is
    [0, 0.5]; the central 40% (percentiles 30 and 70) is 0.25 alone.
    """
    scores_RG = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert stratified_bootstrap_ci(mean_K, scores_RG, reps=4_000) == (0.25, 0.0, 0.5)
    assert stratified_bootstrap_ci(mean_K, scores_RG, reps=4_000, confidence=0.4) == (0.25, 0.25, 0.25)
    # different numbers of runs per game: A (0, 1) and B (5): (mean A + 5) / 2 is 2.5, 2.75 or 3
    assert stratified_bootstrap_ci(mean_K, [[0.0, 1.0], [5.0]], reps=4_000) == (2.75, 2.5, 3.0)
    again = stratified_bootstrap_ci(mean_K, [[0.0, 1.0], [5.0, 7.0, 6.0]], reps=500, seed=3)
    assert again == stratified_bootstrap_ci(mean_K, [[0.0, 1.0], [5.0, 7.0, 6.0]], reps=500, seed=3)


def test_stratified_bootstrap_keeps_games_apart() -> None:
    """One run per game: every replicate is the data itself, so the interval is the point (an i.i.d.
    bootstrap over all cells would mix the games and widen it)."""
    scores_RG = np.array([[0.1, 0.5, 2.0, 7.0]])
    point_, low, high = stratified_bootstrap_ci(iqm_K, scores_RG, reps=200)
    assert point_ == low == high == pytest.approx(1.25)  # n = 4: one cut at each end, mean of 0.5 and 2.0
    with pytest.raises(ValueError, match=r"\(runs, games\) matrix"):
        stratified_bootstrap_ci(iqm_K, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="one non-empty 1-D array of runs per game"):
        stratified_bootstrap_ci(iqm_K, [[1.0], []])


def test_drq_eps_26_game_aggregates_are_rliables_published_ones() -> None:
    """rliable's paper (Agarwal et al. 2021, Atari 100k): DrQ(eps) IQM 0.280 with a 95% CI of about
    [0.27, 0.29]; the research note's recomputation gave IQM 0.280 [0.271, 0.288], median 0.313,
    mean 0.465, DER 0.183 and SPR 0.337."""
    drq = _hns("DrQ(eps)")
    point_, low, high = stratified_bootstrap_ci(iqm_K, drq, reps=2_000)
    assert point_ == pytest.approx(0.2796, abs=1e-4)
    assert low == pytest.approx(0.271, abs=0.002) and high == pytest.approx(0.288, abs=0.002)
    assert point(median_K, drq) == pytest.approx(0.3129, abs=1e-4)
    assert point(mean_K, drq) == pytest.approx(0.4647, abs=1e-4)
    assert point(iqm_K, _hns("DER")) == pytest.approx(0.183, abs=5e-4)
    assert point(iqm_K, _hns("SPR")) == pytest.approx(0.337, abs=5e-4)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # arch's notice about random_state, which rliable passes on
def test_the_same_numbers_as_rliable() -> None:
    """rliable (if installed: the dev extra pins it) on the same matrices: equal points, intervals within the
    Monte Carlo error of its 2,000 (400 for P(X > Y)) replicates against ours of 20,000."""
    pytest.importorskip("rliable")
    from rliable import library, metrics

    drq, spr = _hns("DrQ(eps)"), _hns("SPR")
    for theirs, ours, tol in [
        (metrics.aggregate_iqm, iqm_K, 0.002),
        (metrics.aggregate_mean, mean_K, 0.002),
        (metrics.aggregate_median, median_K, 0.005),
    ]:
        np.random.seed(0)  # rliable 1.2 draws its resamples from numpy's global generator
        points, intervals = library.get_interval_estimates(
            {"drq": drq}, lambda s, f=theirs: np.array([f(s)]), reps=2_000
        )
        mine = stratified_bootstrap_ci(ours, drq, reps=20_000)
        assert mine.point == pytest.approx(float(points["drq"][0]), abs=1e-12)
        assert [mine.low, mine.high] == pytest.approx(intervals["drq"].ravel().tolist(), abs=tol)
    three = [GAMES.index(g) for g in ("Boxing", "Breakout", "Krull")]
    x, y = spr[:10, three], drq[:, three]  # rliable's P(X > Y) costs a scipy call per game and replicate
    assert point(improvement_K, spr, drq) == pytest.approx(metrics.probability_of_improvement(spr, drq), abs=1e-12)
    assert point(improvement_K, x[:3], y) == pytest.approx(metrics.probability_of_improvement(x[:3], y), abs=1e-12)
    np.random.seed(0)
    points, intervals = library.get_interval_estimates(
        {"poi": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=400
    )
    mine = stratified_bootstrap_ci(improvement_K, x, y, reps=20_000)
    assert mine.point == pytest.approx(float(points["poi"][0]), abs=1e-12)
    assert [mine.low, mine.high] == pytest.approx(intervals["poi"].ravel().tolist(), abs=0.01)
