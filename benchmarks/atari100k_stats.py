"""Atari 100k reference scores and the aggregate statistics of Agarwal et al. (2021, "rliable").

Every number below is from ``research/atari-100k.md`` (sections 1.3, 1.5 and the DER curve table),
which computed them from the rliable score data: ``gs://rl-benchmark-data/atari_100k``, read via
the mirrors ``eloialonso/iris@24326aa results/data/{DrQ(eps),SPR,HUMAN,RANDOM}.json`` and
``RLE-Foundation/rllte@ddd76d5 hsuanwu/evaluation/atari_100k/{DER.json,DER/<Game>.json}``. Random
and human scores are those of Dopamine's ``labs/atari_100k/normalization_utils.py`` (the same).
DER, DrQ(eps) and SPR are means over 100 runs, each the mean of 100 evaluation games.

The statistics follow rliable (``rliable/metrics.py``, ``rliable/library.py``):

* human-normalised score, ``HNS = (score - random) / (human - random)``;
* interquartile mean, ``IQM``: the mean of the middle 50% of all (run, game) scores, as
  ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` computes it (``int(0.25 n)`` cut at each end);
* confidence intervals by the stratified bootstrap: each game's runs are resampled with
  replacement independently of the other games', the statistic recomputed, and the interval is
  the percentiles of those replicates (rliable: ``arch``'s percentile method, 50,000 repetitions).

Shape suffixes: ``R`` runs (seeds) per game, ``G`` games, ``K`` bootstrap replicates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# game: (random, human, DER mean, DrQ(eps) mean, SPR mean), section 1.3 of the research note
PUBLISHED: dict[str, tuple[float, float, float, float, float]] = {
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

# game: DrQ(eps)'s 10th / 50th / 90th percentile over its 100 runs, section 1.5 of the research note
DRQ_EPS_PERCENTILES: dict[str, tuple[float, float, float]] = {
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

# DER's mean evaluation score during training (100 runs), research note section 1.5 (from DER/<Game>.json)
DER_CURVE_STEPS = (10_000, 20_000, 30_000, 50_000, 70_000, 100_000)
DER_CURVES: dict[str, tuple[float, ...]] = {
    "Breakout": (2.3, 2.7, 3.9, 6.6, 7.8, 9.2),
    "Pong": (-20.9, -20.6, -20.3, -18.6, -15.5, -9.7),
    "Boxing": (-11.5, -5.1, -3.1, -1.6, -1.5, -0.3),
    "Freeway": (12.9, 7.0, 8.5, 15.0, 17.3, 20.9),
    "Krull": (2058, 2955, 3186, 3240, 3231, 3257),
    "KungFuMaster": (157.9, 438.1, 869.8, 2482, 4890, 6580),
    "RoadRunner": (690.8, 958.9, 1833, 5429, 9152, 11843),
    "Kangaroo": (52.3, 53.6, 84.3, 155.0, 282.8, 581.7),
    "Seaquest": (112.0, 166.5, 226.5, 260.1, 288.0, 304.6),
    "MsPacman": (722.8, 877.2, 917.1, 1026, 1113, 1187),
    "Qbert": (339.2, 450.5, 538.4, 687.1, 1012, 1774),
    "CrazyClimber": (1115, 6828, 18194, 30235, 34845, 34509),
}

# 26-game aggregates of DrQ(eps) (100 runs), research note section 1.4: IQM [95% CI] of HNS
DRQ_EPS_IQM = (0.280, 0.271, 0.288)


def human_normalized(game: str, score: float | np.ndarray) -> float | np.ndarray:
    """``(score - random) / (human - random)`` with the published random and human scores of ``game``."""
    if game not in PUBLISHED:
        raise ValueError(f"no published random and human scores for {game!r}; expected one of {sorted(PUBLISHED)}")
    random, human = PUBLISHED[game][:2]
    return (score - random) / (human - random)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: ``int(n / 4)`` cut at each end of the sorted values, the rest averaged.

    The same as ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, rliable's ``aggregate_iqm``.
    """
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if flat.size == 0:
        raise ValueError("iqm needs at least one score")
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def stratified_bootstrap_ci(
    scores_RG: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic(scores_RG)`` and its percentile bootstrap interval.

    Each replicate draws, for every game (column) separately, ``R`` of its runs with
    replacement, which keeps every game in every replicate (rliable's ``StratifiedBootstrap``).
    """
    scores_RG = np.asarray(scores_RG, dtype=np.float64)
    if scores_RG.ndim != 2 or 0 in scores_RG.shape:
        raise ValueError(f"scores must be a (runs, games) matrix, got shape {scores_RG.shape}")
    if not 0.0 < confidence < 1.0 or reps < 1:
        raise ValueError(f"need 0 < confidence < 1 and reps >= 1, got {confidence} and {reps}")
    runs, games = scores_RG.shape
    rng = np.random.default_rng(seed)
    replicates_K = np.empty(reps)
    columns_G = np.arange(games)
    for k in range(reps):
        rows_RG = rng.integers(0, runs, size=(runs, games))
        replicates_K[k] = statistic(scores_RG[rows_RG, columns_G])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates_K, [tail, 100 - tail])
    return statistic(scores_RG), float(low), float(high)
