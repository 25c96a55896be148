"""Exploration: epsilon-greedy behaviour and epsilon schedules as pure functions of the step.

A schedule is a function of the global env step alone, never state updated in place, so a run
resumed at step ``t`` explores exactly as the uninterrupted run did (Dopamine's
``linearly_decaying_epsilon``, CleanRL's ``linear_schedule``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from dueldqn.config import SCHEDULES


def linear_schedule(step: int, start: float, end: float, duration: int) -> float:
    """Go from ``start`` to ``end`` linearly over ``duration`` steps, then stay at ``end``."""
    if duration <= 0:
        return end
    fraction = min(max(step, 0) / duration, 1.0)
    return start + fraction * (end - start)


def exponential_schedule(step: int, start: float, end: float, duration: int) -> float:
    """Decay from ``start`` towards ``end`` as ``end + (start - end) * 0.01 ** (step / duration)``.

    ``duration`` is the number of steps in which 99% of the gap to ``end`` is closed.
    """
    if duration <= 0:
        return end
    return end + (start - end) * math.exp(math.log(0.01) * max(step, 0) / duration)


def epsilon_at(step: int, schedule: str, start: float, end: float, duration: int) -> float:
    """Epsilon at global env step ``step`` for a named schedule (``constant`` keeps ``start``)."""
    if schedule == "constant":
        return start
    if schedule == "linear":
        return linear_schedule(step, start, end, duration)
    if schedule == "exponential":
        return exponential_schedule(step, start, end, duration)
    raise ValueError(f"unknown epsilon schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


def epsilon_greedy_probs(q_BA: torch.Tensor, epsilon: float, mask_BA: torch.Tensor | None = None) -> torch.Tensor:
    """The epsilon-greedy policy w.r.t. ``q_BA`` as probabilities ``(B, A)``.

    ``pi(a|s) = epsilon / |A| + (1 - epsilon) * [a == argmax_a' Q(s, a')]``; ties go to the first
    maximum, as ``argmax`` does when acting. With a mask ``mask_BA`` (bool, True where legal) both
    range over the legal actions ``L(s)`` only: ``epsilon / |L(s)|`` on each, 0 on the others; a row
    with no legal action (a terminal ``s'``) is taken as all legal.
    """
    if q_BA.dim() != 2:
        raise ValueError(f"expected Q-values of shape (B, A), got {tuple(q_BA.shape)}")
    if mask_BA is not None:
        legal_BA = legal_actions(mask_BA, q_BA.shape)
        share_B1 = epsilon / legal_BA.sum(dim=1, keepdim=True).to(q_BA.dtype)
        probs_BA = torch.where(legal_BA, share_B1, torch.zeros_like(q_BA))
        best_B1 = q_BA.masked_fill(~legal_BA, -torch.inf).argmax(dim=1, keepdim=True)
        return probs_BA.scatter_add_(1, best_B1, torch.full_like(q_BA[:, :1], 1.0 - epsilon))
    n_actions = q_BA.shape[1]
    probs_BA = torch.full_like(q_BA, epsilon / n_actions)
    probs_BA.scatter_add_(1, q_BA.argmax(dim=1, keepdim=True), torch.full_like(q_BA[:, :1], 1.0 - epsilon))
    return probs_BA


def legal_actions(mask_BA: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """``mask_BA`` as bool ``(B, A)``, checked against ``shape``, with rows of no legal action made all legal.

    Only a terminal state may have no legal action (:mod:`dueldqn.envs.masks` checks that at the env),
    and its bootstrap is masked by ``terminated``: any finite value will do there.
    """
    if tuple(mask_BA.shape) != tuple(shape):
        raise ValueError(f"expected an action mask of shape {tuple(shape)}, got {tuple(mask_BA.shape)}")
    mask_BA = mask_BA.bool()
    return mask_BA | ~mask_BA.any(dim=1, keepdim=True)


class ExplorationDraws:
    """Uniform draws ``u_N`` in [0, 1) for each vector step, a pure function of ``(seed, iteration)``.

    The draws for iterations ``[k * block, (k + 1) * block)`` come from a generator of their own,
    derived from the run's seed and ``k`` (numpy ``SeedSequence`` spawn keys, independent of
    every other stream of the run). A step then costs an array lookup rather than generator
    calls (about 3 us each), and a resumed run draws exactly what the uninterrupted run drew
    without a generator state to save: like the schedules, exploration depends on the step alone.

    Args:
        seed: the run's seed.
        num_envs: envs stepped together (draws per iteration).
        block: iterations drawn at once.
    """

    STREAM = 1  # spawn-key prefix that keeps these generators apart from other derived streams

    def __init__(self, seed: int, num_envs: int, block: int = 1024) -> None:
        self.seed, self.num_envs, self.block = seed, num_envs, block
        self._index = -1
        self._draws_KN = np.empty((0, num_envs))

    def __call__(self, iteration: int) -> np.ndarray:
        """The draws ``(N,)`` of vector step ``iteration``."""
        index, row = divmod(iteration, self.block)
        if index != self._index:
            sequence = np.random.SeedSequence(self.seed, spawn_key=(self.STREAM, index))
            self._draws_KN = np.random.default_rng(sequence).random((self.block, self.num_envs))
            self._index = index
        return self._draws_KN[row]


def apex_epsilons(num_envs: int, base: float = 0.4, alpha: float = 7.0) -> np.ndarray:
    """Ape-X's fixed per-env exploration rates ``eps_i = base ** (1 + alpha i / (N - 1))``, ``(N,)`` float64.

    Env ``i`` of ``N`` (counted over all envs of all runners) explores with its own constant
    epsilon, from ``base`` (0.4) down to ``base ** (1 + alpha)`` (about 0.00066): a spread of
    behaviour policies instead of one annealed schedule (Horgan et al., 2018, "Distributed
    Prioritized Experience Replay", section 4.1). One env gets ``base``.
    """
    if num_envs < 1:
        raise ValueError(f"apex_epsilons needs at least one env, got {num_envs}")
    if num_envs == 1:
        return np.array([base], dtype=np.float64)
    i_N = np.arange(num_envs, dtype=np.float64)
    return base ** (1.0 + alpha * i_N / (num_envs - 1))


def annealed_apex_epsilons(step: int, rates_K: np.ndarray, schedule: str, start: float, duration: int) -> np.ndarray:
    """Ape-X runners' rates at run step ``step``: each env's from ``start`` down to its own rate ``rates_K``.

    The config's epsilon schedule (``linear`` or ``exponential`` over ``duration`` env steps of the
    run) ends at each env's Ape-X rate instead of one ``epsilon_end``, so that early data is as
    random as the local loop's; ``constant`` or ``duration`` 0 gives Ape-X's fixed rates throughout.
    """
    if schedule == "constant" or duration <= 0:
        return rates_K
    return np.array([epsilon_at(step, schedule, max(start, rate), rate, duration) for rate in rates_K])


def epsilon_greedy_actions(
    greedy: Callable[[], np.ndarray],
    uniforms_N: np.ndarray,
    epsilon: float | np.ndarray,
    n_actions: int,
    mask_NA: np.ndarray | None = None,
) -> np.ndarray:
    """Actions ``(N,)`` of the epsilon-greedy behaviour policy, from one uniform draw per env.

    Env ``i`` explores when ``u_i < epsilon`` and then takes action ``floor(n_actions * u_i /
    epsilon)``: given ``u_i < epsilon``, ``u_i / epsilon`` is uniform on [0, 1), so the random
    action is uniform over the actions and independent of the decision to explore. Otherwise
    it takes ``greedy()[i]``; ``greedy`` is only called when some env exploits, so the network
    is not run for nothing while epsilon is 1. ``epsilon`` may be one rate for all envs or an
    ``(N,)`` array of per-env rates (Ape-X, :func:`apex_epsilons`).

    With a mask ``mask_NA`` (bool, True where legal) the random action is the
    ``floor(|L_i| u_i / epsilon)``-th legal action of env ``i``: uniform over its legal actions, from the
    same draws (``greedy`` must then take the best legal action itself). Without one, nothing changes.
    """
    if mask_NA is not None:
        return _masked_epsilon_greedy(greedy, uniforms_N, epsilon, mask_NA)
    explore_N = uniforms_N < epsilon
    if not explore_N.any():
        return greedy()
    if isinstance(epsilon, np.ndarray):  # per-env rates: u_i / eps_i only where env i explores (eps_i > 0 there)
        scaled_N = uniforms_N * n_actions / np.where(explore_N, epsilon, 1.0)
        random_N = np.minimum(scaled_N.astype(np.int64), n_actions - 1)
        return random_N if explore_N.all() else np.where(explore_N, random_N, greedy())
    random_N = np.minimum((uniforms_N * (n_actions / epsilon)).astype(np.int64), n_actions - 1)
    if explore_N.all():
        return random_N
    return np.where(explore_N, random_N, greedy())


def legal_rows(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool ``(..., A)``, True where legal) with each row of no legal action made all legal: only a
    terminal state has none, and the action taken there (or its bootstrap) is ignored."""
    return mask | ~mask.any(axis=-1, keepdims=True)


def kth_legal(legal_NA: np.ndarray, k_N: np.ndarray) -> np.ndarray:
    """The ``k_N``-th legal action of each row of ``legal_NA`` (counted from 0), ``(N,)`` int64."""
    return np.argmax(np.cumsum(legal_NA, axis=1) > k_N[:, None], axis=1).astype(np.int64)


def _masked_epsilon_greedy(
    greedy: Callable[[], np.ndarray], uniforms_N: np.ndarray, epsilon: float | np.ndarray, mask_NA: np.ndarray
) -> np.ndarray:
    """:func:`epsilon_greedy_actions` over the legal actions of each env (a row with none: all of them)."""
    explore_N = uniforms_N < epsilon
    if not explore_N.any():
        return greedy()
    legal_NA = legal_rows(mask_NA)
    count_N = legal_NA.sum(axis=1)
    rate_N = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), uniforms_N.shape)
    scaled_N = uniforms_N / np.where(explore_N, rate_N, 1.0)  # uniform on [0, 1) where env i explores
    k_N = np.minimum((scaled_N * count_N).astype(np.int64), count_N - 1)  # the k-th legal action, counted from 0
    random_N = kth_legal(legal_NA, k_N)
    return random_N if explore_N.all() else np.where(explore_N, random_N, greedy())
