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

SCHEDULES = ("constant", "linear", "exponential")


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


def epsilon_greedy_probs(q_BA: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The epsilon-greedy policy w.r.t. ``q_BA`` as probabilities ``(B, A)``.

    ``pi(a|s) = epsilon / |A| + (1 - epsilon) * [a == argmax_a' Q(s, a')]``; ties go to the first
    maximum, as ``argmax`` does when acting.
    """
    if q_BA.dim() != 2:
        raise ValueError(f"expected Q-values of shape (B, A), got {tuple(q_BA.shape)}")
    n_actions = q_BA.shape[1]
    probs_BA = torch.full_like(q_BA, epsilon / n_actions)
    probs_BA.scatter_add_(1, q_BA.argmax(dim=1, keepdim=True), torch.full_like(q_BA[:, :1], 1.0 - epsilon))
    return probs_BA


def epsilon_greedy_actions(
    greedy: Callable[[], np.ndarray], num: int, epsilon: float, n_actions: int, rng: np.random.Generator
) -> np.ndarray:
    """Actions ``(N,)`` of the epsilon-greedy behaviour policy for ``num`` envs.

    Each env explores (a uniformly random action) with probability ``epsilon`` and otherwise
    takes ``greedy()[i]``. ``greedy`` is only called when some env exploits, so the network is
    not run for nothing while epsilon is 1. The generator is advanced by the same amount
    either way, so a run's random stream does not depend on which branch was taken.
    """
    explore_N = rng.random(num) < epsilon
    random_N = rng.integers(0, n_actions, size=num)
    if explore_N.all():
        return random_N
    return np.where(explore_N, random_N, greedy())
