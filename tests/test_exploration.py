"""Schedules at given steps and the epsilon-greedy policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dueldqn.exploration import (
    epsilon_at,
    epsilon_greedy_actions,
    epsilon_greedy_probs,
    exponential_schedule,
    linear_schedule,
)


def test_linear_schedule_at_given_steps() -> None:
    assert linear_schedule(0, 1.0, 0.05, 1000) == 1.0
    assert linear_schedule(500, 1.0, 0.05, 1000) == pytest.approx(0.525)
    assert linear_schedule(1000, 1.0, 0.05, 1000) == pytest.approx(0.05)
    assert linear_schedule(10**6, 1.0, 0.05, 1000) == pytest.approx(0.05)
    assert linear_schedule(5, 1.0, 0.05, 0) == 0.05


def test_exponential_schedule_at_given_steps() -> None:
    assert exponential_schedule(0, 1.0, 0.0, 100) == 1.0
    assert exponential_schedule(50, 1.0, 0.0, 100) == pytest.approx(0.1)  # 0.01 ** 0.5
    assert exponential_schedule(100, 1.0, 0.1, 100) == pytest.approx(0.1 + 0.9 * 0.01)


def test_named_schedules_and_constant() -> None:
    assert epsilon_at(12345, "constant", 0.2, 0.0, 10) == 0.2
    assert epsilon_at(250, "linear", 1.0, 0.0, 1000) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="constant, linear, exponential"):
        epsilon_at(0, "cosine", 1.0, 0.0, 10)


def test_schedules_are_pure_functions_of_the_step() -> None:
    first = [epsilon_at(s, "exponential", 1.0, 0.05, 300) for s in range(0, 1000, 7)]
    again = [epsilon_at(s, "exponential", 1.0, 0.05, 300) for s in range(0, 1000, 7)]
    assert first == again


def test_epsilon_greedy_probabilities() -> None:
    q = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, -1.0]])
    probs = epsilon_greedy_probs(q, 0.3)
    torch.testing.assert_close(probs, torch.tensor([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1]]))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_epsilon_greedy_actions_rate_and_greedy_skipping() -> None:
    rng = np.random.default_rng(0)
    calls = []

    def greedy() -> np.ndarray:
        calls.append(1)
        return np.full(10_000, 2)

    actions = epsilon_greedy_actions(greedy, 10_000, 0.3, 4, rng)
    # P(action != greedy) = epsilon * 3/4
    assert abs(np.mean(actions != 2) - 0.225) < 0.015
    assert len(calls) == 1
    never = epsilon_greedy_actions(lambda: pytest.fail("greedy called at epsilon 1"), 5, 1.0, 4, rng)
    assert never.shape == (5,) and set(never.tolist()) <= {0, 1, 2, 3}
    # Same seed, same stream, whichever branch is taken.
    a = np.random.default_rng(7)
    b = np.random.default_rng(7)
    epsilon_greedy_actions(lambda: np.zeros(3, dtype=np.int64), 3, 1.0, 4, a)
    epsilon_greedy_actions(lambda: np.zeros(3, dtype=np.int64), 3, 0.0, 4, b)
    assert a.random() == b.random()
