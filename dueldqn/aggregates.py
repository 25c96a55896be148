"""Aggregate scores over games and runs, with stratified-bootstrap intervals (Agarwal et al. 2021, "rliable").

"Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021) reports, over a suite
of games with several runs each (scores are usually human-normalised first):

* the interquartile mean ``IQM``: the mean of the middle 50% of all (run, game) scores, as
  ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` computes it (``int(0.25 n)`` cut at each end); where
  games have different numbers of runs, of the scores with every game weighing the same (``iqm_K``);
* the mean and the median over games of each game's mean over runs;
* the probability of improvement ``P(X > Y)``: per game ``m``, ``P(X_m > Y_m) + 0.5 P(X_m = Y_m)`` over all
  pairs of a run of X and a run of Y (the Mann-Whitney U statistic over ``n m``), averaged over games;
* confidence intervals by the stratified bootstrap: each game's runs are drawn again with replacement,
  independently of the other games' (and of the other algorithm's, for ``P(X > Y)``), the statistic is
  recomputed on each of ``K`` replicates, and the interval is the replicates' percentiles.

These are the numbers of rliable 1.2 (``rliable.metrics``, ``rliable.library.get_interval_estimates`` with
its default percentile method); ``tests/test_aggregates.py`` checks them against rliable where it is
installed. This module does without rliable's dependencies (arch, pandas, scipy, seaborn), draws its
replicates from an explicit seeded generator (rliable 1.2 draws them from numpy's global one, whatever
``random_state`` says), and takes a different number of runs per game (a campaign in progress), which
rliable's ``(runs, games)`` matrices cannot hold.

Scores are one 1-D array of runs per game (or a ``(runs, games)`` matrix). The statistics work on a batch
of replicates: one ``(K, runs)`` array per game in, ``(K,)`` out.
Shape suffixes: ``R`` runs of one game, ``G`` games, ``K`` bootstrap replicates, ``N`` all cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

Scores = np.ndarray | Sequence[Sequence[float] | np.ndarray]  # a (runs, games) matrix or one 1-D array per game
Statistic = Callable[..., np.ndarray]  # one list of (K, R) arrays per algorithm -> (K,)

CELLS_PER_CHUNK = 4_000_000  # replicates are drawn in chunks of about this many numbers (32 MB)


class Estimate(NamedTuple):
    """A statistic of the data and its bootstrap confidence interval."""

    point: float
    low: float
    high: float


def per_game(scores: Scores) -> list[np.ndarray]:
    """One float64 1-D array of runs per game, from a ``(runs, games)`` matrix or a sequence of 1-D arrays."""
    if isinstance(scores, np.ndarray):
        if scores.ndim != 2 or 0 in scores.shape:
            raise ValueError(f"scores must be a (runs, games) matrix, got shape {scores.shape}")
        games = [scores[:, g].astype(np.float64) for g in range(scores.shape[1])]
    else:
        games = [np.asarray(runs, dtype=np.float64) for runs in scores]
    if not games or any(runs.ndim != 1 or runs.size == 0 for runs in games):
        shapes = [np.shape(runs) for runs in games]
        raise ValueError(f"scores must hold one non-empty 1-D array of runs per game, got shapes {shapes}")
    if not all(np.isfinite(runs).all() for runs in games):
        raise ValueError("scores must be finite numbers")
    return games


def iqm_K(runs_G_KR: Sequence[np.ndarray]) -> np.ndarray:
    """Interquartile mean of all cells of each replicate, every game weighing the same.

    With the same number of runs in every game (rliable's ``(runs, games)`` matrix): ``int(N / 4)`` cells cut
    at each end, the rest averaged, as ``scipy.stats.trim_mean`` does. With different numbers (a campaign in
    progress) the plain cut would weigh a game by its runs, so each cell of game ``g`` weighs
    ``1 / (G R_g)`` and a quarter of the total weight is cut at each end, a cell in part where the cut falls
    inside it: the interquartile mean of the mixture that gives each game the same weight.
    """
    counts = [runs_KR.shape[1] for runs_KR in runs_G_KR]
    cells_KN = np.concatenate(runs_G_KR, axis=1)
    if len(set(counts)) == 1:
        cells_KN = np.sort(cells_KN, axis=1)
        cut = int(0.25 * cells_KN.shape[1])
        return cells_KN[:, cut : cells_KN.shape[1] - cut].mean(axis=1)
    weights_N = np.concatenate([np.full(n, 1.0 / (len(counts) * n)) for n in counts])
    order_KN = np.argsort(cells_KN, axis=1, kind="stable")
    values_KN = np.take_along_axis(cells_KN, order_KN, axis=1)
    weights_KN = weights_N[order_KN]
    ends_KN = np.cumsum(weights_KN, axis=1)
    kept_KN = np.clip(np.minimum(ends_KN, 0.75) - np.maximum(ends_KN - weights_KN, 0.25), 0.0, None)
    return (values_KN * kept_KN).sum(axis=1) / kept_KN.sum(axis=1)


def mean_K(runs_G_KR: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over games of each game's mean over runs."""
    return np.stack([runs_KR.mean(axis=1) for runs_KR in runs_G_KR], axis=1).mean(axis=1)


def median_K(runs_G_KR: Sequence[np.ndarray]) -> np.ndarray:
    """Median over games of each game's mean over runs."""
    return np.median(np.stack([runs_KR.mean(axis=1) for runs_KR in runs_G_KR], axis=1), axis=1)


def improvement_K(x_G_KR: Sequence[np.ndarray], y_G_KR: Sequence[np.ndarray]) -> np.ndarray:
    """Probability of improvement of X over Y: per game ``P(X > Y) + 0.5 P(X = Y)`` over run pairs, averaged."""
    if len(x_G_KR) != len(y_G_KR):
        raise ValueError(f"X and Y must cover the same games, got {len(x_G_KR)} and {len(y_G_KR)} games")
    per_game_KG = []
    for x_KR, y_KS in zip(x_G_KR, y_G_KR, strict=True):
        x_KRS, y_KRS = x_KR[:, :, None], y_KS[:, None, :]
        per_game_KG.append((x_KRS > y_KRS).mean(axis=(1, 2)) + 0.5 * (x_KRS == y_KRS).mean(axis=(1, 2)))
    return np.stack(per_game_KG, axis=1).mean(axis=1)


def point(statistic: Statistic, *scores: Scores) -> float:
    """``statistic`` of the data themselves (one replicate: every run once)."""
    return float(statistic(*[[runs_R[None, :] for runs_R in per_game(s)] for s in scores])[0])


def iqm(scores: np.ndarray | Sequence[float]) -> float:
    """Interquartile mean of all entries, the same as ``scipy.stats.trim_mean(scores, 0.25, axis=None)``."""
    flat = np.asarray(scores, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("iqm needs at least one score")
    return point(iqm_K, [flat])


def stratified_bootstrap_ci(
    statistic: Statistic,
    *scores: Scores,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """``statistic`` of ``scores`` and its percentile interval over ``reps`` stratified-bootstrap replicates.

    Each replicate draws, for every game of every algorithm separately, as many of its runs as it has,
    with replacement: every game stays in every replicate (rliable's ``StratifiedBootstrap``, and its
    ``StratifiedIndependentBootstrap`` for several algorithms). The replicates come from
    ``np.random.default_rng(seed)``.
    """
    if not 0.0 < confidence < 1.0 or reps < 1:
        raise ValueError(f"need 0 < confidence < 1 and reps >= 1, got {confidence} and {reps}")
    if not scores:
        raise ValueError("stratified_bootstrap_ci needs the scores of at least one algorithm")
    data = [per_game(s) for s in scores]
    if any(len(games) != len(data[0]) for games in data):
        raise ValueError(f"every algorithm needs the same games, got {[len(games) for games in data]} games")
    cells = sum(runs.size for runs in data[0])
    for other in data[1:]:  # pairwise statistics compare every run of one with every run of the other
        cells = sum(x.size * y.size for x, y in zip(data[0], other, strict=True))
    chunk = max(1, CELLS_PER_CHUNK // max(cells, 1))
    rng = np.random.default_rng(seed)
    replicates_K = np.empty(reps)
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        drawn = [[runs_R[rng.integers(0, runs_R.size, size=(k, runs_R.size))] for runs_R in games] for games in data]
        replicates_K[start : start + k] = statistic(*drawn)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates_K, [tail, 100 - tail])
    return Estimate(point(statistic, *scores), float(low), float(high))
