"""Schedules at given steps and the epsilon-greedy policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dueldqn.exploration import (
    ExplorationDraws,
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
    # Asked out of order (as a resumed run does), each step gets its closed-form value: nothing carries over.
    steps = [999, 0, 300, 7, 300, 150, 1_000_000, 42]
    for schedule, closed_form in [
        ("exponential", lambda s: 0.05 + 0.95 * 0.01 ** (s / 300)),
        ("linear", lambda s: max(0.05, 1.0 - 0.95 * s / 300)),
    ]:
        for s in steps:
            assert epsilon_at(s, schedule, 1.0, 0.05, 300) == pytest.approx(closed_form(s), rel=1e-12, abs=1e-15), s


def test_epsilon_greedy_probabilities() -> None:
    q = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, -1.0]])
    probs = epsilon_greedy_probs(q, 0.3)
    torch.testing.assert_close(probs, torch.tensor([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1]]))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_epsilon_greedy_actions_from_one_draw_per_env() -> None:
    greedy_N = np.array([2, 2, 2, 2, 2])
    u_N = np.array([0.0, 0.05, 0.149, 0.29, 0.3])
    # epsilon 0.3, 4 actions: u < 0.3 explores with action floor(4 u / 0.3); u >= 0.3 is greedy
    actions = epsilon_greedy_actions(lambda: greedy_N, u_N, 0.3, 4)
    np.testing.assert_array_equal(actions, [0, 0, 1, 3, 2])
    np.testing.assert_array_equal(epsilon_greedy_actions(lambda: greedy_N, u_N, 0.0, 4), greedy_N)
    never = epsilon_greedy_actions(lambda: pytest.fail("greedy called at epsilon 1"), u_N, 1.0, 4)
    np.testing.assert_array_equal(never, [0, 0, 0, 1, 1])


def test_epsilon_greedy_actions_rate_and_uniform_random_actions() -> None:
    calls = []

    def greedy() -> np.ndarray:
        calls.append(1)
        return np.full(40_000, 2)

    u_N = np.random.default_rng(0).random(40_000)
    actions = epsilon_greedy_actions(greedy, u_N, 0.3, 4)
    assert len(calls) == 1
    # P(action = a) = epsilon / 4 for a != greedy, and 1 - epsilon + epsilon / 4 for the greedy one
    freq = np.bincount(actions, minlength=4) / len(actions)
    np.testing.assert_allclose(freq, [0.075, 0.075, 0.775, 0.075], atol=0.006)


def test_exploration_draws_are_a_function_of_seed_and_iteration() -> None:
    draws = ExplorationDraws(seed=3, num_envs=2, block=8)
    first = np.stack([draws(t) for t in range(20)])
    assert first.shape == (20, 2) and ((first >= 0) & (first < 1)).all()
    # Out of order (as after a resume at iteration 13), a fresh object draws the same numbers.
    again = ExplorationDraws(seed=3, num_envs=2, block=8)
    np.testing.assert_array_equal(np.stack([again(t) for t in (13, 2, 19)]), first[[13, 2, 19]])
    assert not np.array_equal(ExplorationDraws(seed=4, num_envs=2, block=8)(0), first[0])
    # Independent of the run's main generator, which is default_rng(seed).
    assert not np.isin(np.random.default_rng(3).random(64), first).any()


@pytest.mark.parametrize("numpy_mlp", [True, False])
def test_the_actor_is_greedy_at_epsilon_0_and_follows_its_draws_at_epsilon_1(numpy_mlp: bool) -> None:
    import gymnasium as gym
    import torch

    from dueldqn.actor import Actor
    from dueldqn.networks import build_q_network

    torch.manual_seed(0)
    q_net = build_q_network(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(4), hidden_sizes=(8,))
    draws = ExplorationDraws(seed=5, num_envs=6)
    actor = Actor(q_net, 4, draws=draws, device=torch.device("cpu"), numpy_mlp=numpy_mlp)
    obs_NO = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    with torch.no_grad():
        greedy_N = q_net(torch.from_numpy(obs_NO)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(actor.act(obs_NO, 0.0, iteration=7), greedy_N)
    np.testing.assert_array_equal(actor.act(obs_NO, 1.0, iteration=7), np.floor(4 * draws(7)).astype(np.int64))
    explore_N = draws(9) < 0.5
    mixed_N = actor.act(obs_NO, 0.5, iteration=9)
    np.testing.assert_array_equal(mixed_N[~explore_N], greedy_N[~explore_N])
    np.testing.assert_array_equal(mixed_N[explore_N], np.floor(4 * draws(9) / 0.5).astype(np.int64)[explore_N])
