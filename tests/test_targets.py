"""TD targets and losses against hand-computed values."""

from __future__ import annotations

import re

import pytest
import torch

from dueldqn.targets import (
    double_q_target,
    expected_sarsa_target,
    q_learning_target,
    sarsa_target,
    td_loss,
    td_target,
)

GAMMA = 0.9
REWARDS = torch.tensor([1.0, 0.5, -1.0])
# Transition 1 is terminal. Transitions 0 and 2 are not: that includes a time-limit truncation,
# which is stored with terminated=0 and so bootstraps from its real final observation.
TERMINATED = torch.tensor([0.0, 1.0, 0.0])
NEXT_Q_TARGET = torch.tensor([[1.0, 2.0], [3.0, 4.0], [-1.0, -2.0]])
NEXT_Q_ONLINE = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 1.0]])  # argmax: 0, 1, 1


def test_q_learning_target_by_hand() -> None:
    target = q_learning_target(REWARDS, TERMINATED, NEXT_Q_TARGET, GAMMA)
    # 1 + 0.9 * max(1, 2) ; terminal: 0.5 ; -1 + 0.9 * max(-1, -2)
    torch.testing.assert_close(target, torch.tensor([2.8, 0.5, -1.9]))


def test_truncated_transition_is_bootstrapped_terminal_is_not() -> None:
    truncated_not_terminal = q_learning_target(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[10.0]]), 0.5)
    terminal = q_learning_target(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([[10.0]]), 0.5)
    torch.testing.assert_close(truncated_not_terminal, torch.tensor([6.0]))
    torch.testing.assert_close(terminal, torch.tensor([1.0]))


def test_double_q_target_by_hand() -> None:
    target = double_q_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, GAMMA)
    # online picks 0 -> Q_targ 1 ; terminal ; online picks 1 -> Q_targ -2
    torch.testing.assert_close(target, torch.tensor([1.9, 0.5, -2.8]))


def test_sarsa_target_by_hand() -> None:
    target = sarsa_target(REWARDS, TERMINATED, NEXT_Q_TARGET, torch.tensor([0, 0, 1]), GAMMA)
    torch.testing.assert_close(target, torch.tensor([1.9, 0.5, -2.8]))


def test_expected_sarsa_target_by_hand() -> None:
    # epsilon 0.2 over 2 actions: greedy action 0.9, other 0.1 (greedy w.r.t. the online net)
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    target = expected_sarsa_target(REWARDS, TERMINATED, NEXT_Q_TARGET, probs, GAMMA)
    # 1 + 0.9 * (0.9*1 + 0.1*2) = 1.99 ; terminal ; -1 + 0.9 * (0.1*-1 + 0.9*-2) = -2.71
    torch.testing.assert_close(target, torch.tensor([1.99, 0.5, -2.71]))


class Table(torch.nn.Module):
    """A 'network' that looks its Q-values up by the first feature of the observation."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs[:, 0].long()]


def test_td_target_dispatch_reads_online_and_target_networks() -> None:
    next_obs = torch.tensor([[0.0], [1.0], [2.0]])
    online, target = Table(NEXT_Q_ONLINE), Table(NEXT_Q_TARGET)
    args = (REWARDS, TERMINATED, next_obs, online, target, GAMMA)
    torch.testing.assert_close(td_target("dqn", *args, 0.3), torch.tensor([2.8, 0.5, -1.9]))
    torch.testing.assert_close(td_target("double", *args, 0.3), torch.tensor([1.9, 0.5, -2.8]))
    torch.testing.assert_close(td_target("expected-sarsa", *args, 0.2), torch.tensor([1.99, 0.5, -2.71]))
    # SARSA with epsilon 0 follows the online greedy action: the Double-Q target.
    torch.testing.assert_close(td_target("sarsa", *args, 0.0), torch.tensor([1.9, 0.5, -2.8]))
    # With epsilon 1, A' is uniform: over many draws row 0 averages 1 + 0.9 * 1.5.
    many = torch.zeros(4000, 1)
    gen = torch.Generator().manual_seed(0)
    draws = td_target("sarsa", torch.ones(4000), torch.zeros(4000), many, online, target, GAMMA, 1.0, gen)
    assert sorted(draws.unique().tolist()) == pytest.approx([1.9, 2.8])
    assert abs(draws.mean().item() - 2.35) < 0.03
    with pytest.raises(ValueError, match="unknown algorithm"):
        td_target("a2c", *args, 0.1)


def test_targets_do_not_build_a_graph() -> None:
    q = NEXT_Q_TARGET.clone().requires_grad_(True)
    assert not q_learning_target(REWARDS, TERMINATED, q, GAMMA).requires_grad


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: q_learning_target(REWARDS, TERMINATED, NEXT_Q_TARGET[0], GAMMA), "shape (B, A)"),
        (lambda: q_learning_target(REWARDS[:2], TERMINATED, NEXT_Q_TARGET, GAMMA), "shape (3,)"),
        (lambda: q_learning_target(REWARDS, TERMINATED, NEXT_Q_TARGET, 1.5), "gamma in [0, 1]"),
        (lambda: double_q_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE[:, :1], GAMMA), "one shape"),
        (lambda: sarsa_target(REWARDS, TERMINATED, NEXT_Q_TARGET, torch.tensor([0, 1]), GAMMA), "next actions"),
        (lambda: expected_sarsa_target(REWARDS, TERMINATED, NEXT_Q_TARGET, torch.ones(3, 3), GAMMA), "probabilities"),
    ],
)
def test_shape_errors_say_what_was_expected(call, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=re.escape(fragment)):
        call()


def test_losses_by_hand() -> None:
    q = torch.tensor([0.0, 2.0, 5.0])
    y = torch.tensor([1.0, 2.0, 2.0])
    torch.testing.assert_close(td_loss(q, y, "mse"), torch.tensor((1 + 0 + 9) / 3))
    # Huber: 0.5 * 1^2 ; 0 ; 3 - 0.5
    torch.testing.assert_close(td_loss(q, y, "huber"), torch.tensor((0.5 + 0 + 2.5) / 3))
    with pytest.raises(ValueError, match="unknown loss"):
        td_loss(q, y, "l1")
    with pytest.raises(ValueError, match="one shape"):
        td_loss(q[:, None], y, "mse")


def test_per_transition_discounts_bootstrap_n_step_returns() -> None:
    # n-step: the rewards are already folded; the bootstrap is discounted by gamma^k per transition.
    next_obs = torch.tensor([[0.0], [1.0], [2.0]])
    online, target = Table(NEXT_Q_ONLINE), Table(NEXT_Q_TARGET)
    discounts = torch.tensor([0.81, 0.9, 0.729])  # k = 2, 1, 3 with gamma 0.9
    y = td_target("dqn", REWARDS, TERMINATED, next_obs, online, target, discounts, 0.3)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.81 * 2.0, 0.5, -1.0 + 0.729 * -1.0]))
    y = td_target("double", REWARDS, TERMINATED, next_obs, online, target, discounts, 0.3)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.81 * 1.0, 0.5, -1.0 + 0.729 * -2.0]))
    # A float discount equal to each entry gives the same target as before.
    same = td_target("dqn", REWARDS, TERMINATED, next_obs, online, target, torch.full((3,), GAMMA), 0.3)
    torch.testing.assert_close(same, td_target("dqn", REWARDS, TERMINATED, next_obs, online, target, GAMMA, 0.3))
    with pytest.raises(ValueError, match=r"discounts of shape \(3,\)"):
        td_target("dqn", REWARDS, TERMINATED, next_obs, online, target, torch.ones(2), 0.3)


def test_weighted_loss_is_the_mean_of_weighted_terms() -> None:
    q, y, w = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0]), torch.tensor([0.5, 1.0, 0.25])
    torch.testing.assert_close(td_loss(q, y, "mse", w), torch.tensor((0.5 * 1 + 0 + 0.25 * 9) / 3))
    torch.testing.assert_close(td_loss(q, y, "huber", w), torch.tensor((0.5 * 0.5 + 0 + 0.25 * 2.5) / 3))
    torch.testing.assert_close(td_loss(q, y, "mse", torch.ones(3)), td_loss(q, y, "mse"))
    with pytest.raises(ValueError, match="weights of shape"):
        td_loss(q, y, "mse", torch.ones(2))
