"""TD targets and losses as pure tensor functions.

Every target has the form ``y = r + gamma * (1 - terminated) * bootstrap(s')``; the algorithms
differ only in the bootstrap value read from the target network ``Q_targ``:

=================  ====================================================  ==========================
algorithm          bootstrap value                                       reference
=================  ====================================================  ==========================
``dqn``            ``max_a' Q_targ(s', a')``                             Mnih et al., 2015
``double``         ``Q_targ(s', argmax_a' Q(s', a'))``                   van Hasselt et al., 2016
``sarsa``          ``Q_targ(s', A')`` with ``A' ~ pi(s')``, the epsilon-  the lecture's Deep SARSA
                   greedy policy w.r.t. the online ``Q``
``expected-sarsa`` ``sum_a' pi(a'|s') Q_targ(s', a')``                   van Seijen et al., 2009
=================  ====================================================  ==========================

Only ``terminated`` masks the bootstrap: a transition cut by a time limit is bootstrapped from
its real final observation. The functions check shapes on entry and run under ``no_grad``.

With invalid-action masks (:mod:`dueldqn.envs.masks`) every bootstrap ranges over the legal actions
``L(s')`` of ``s'`` only: ``next_mask_BA`` (bool, True where legal) sends illegal actions' Q-values to
``-inf`` before a max or argmax, and the epsilon-greedy policy of the SARSA targets puts
``epsilon / |L(s')|`` on each legal action and nothing on the others. A terminal ``s'`` may have no
legal action (its bootstrap is masked by ``terminated``): such a row is taken as all legal.

``gamma`` is one discount for the batch or a tensor ``(B,)`` of per-transition discounts: an
n-step return (:mod:`dueldqn.replay.nstep`) folds ``k`` rewards and bootstraps with ``gamma^k``,
``y = sum_{j<k} gamma^j r_{t+j} + gamma^k (1 - terminated) bootstrap(s_{t+k})``. The loss takes
optional per-transition weights, the importance-sampling correction of prioritized replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from dueldqn.config import ALGORITHMS, LOSSES
from dueldqn.exploration import epsilon_greedy_probs, legal_actions

Discount = float | torch.Tensor  # one gamma, or gamma^k per transition (B,)


class Update(NamedTuple):
    """What one gradient step on the TD loss returns, detached: the loss and ``|y_i - Q(s_i, a_i)|``.

    ``td_abs_B`` is what prioritized replay turns into new priorities (Schaul et al., 2016).
    """

    loss: torch.Tensor  # ()
    td_abs_B: torch.Tensor  # (B,)


def _check(rewards_B: torch.Tensor, terminated_B: torch.Tensor, next_q_BA: torch.Tensor, gamma: Discount) -> None:
    if next_q_BA.dim() != 2:
        raise ValueError(f"expected next-state Q-values of shape (B, A), got {tuple(next_q_BA.shape)}")
    batch = next_q_BA.shape[0]
    if rewards_B.shape != (batch,) or terminated_B.shape != (batch,):
        raise ValueError(
            f"expected rewards and terminated of shape ({batch},) to match Q-values {tuple(next_q_BA.shape)}, "
            f"got {tuple(rewards_B.shape)} and {tuple(terminated_B.shape)}"
        )
    if isinstance(gamma, torch.Tensor):
        if gamma.shape != (batch,):
            raise ValueError(f"expected per-transition discounts of shape ({batch},), got {tuple(gamma.shape)}")
    elif not 0.0 <= gamma <= 1.0:
        raise ValueError(f"expected a discount gamma in [0, 1], got {gamma}")


def _masked(q_BA: torch.Tensor, mask_BA: torch.Tensor | None) -> torch.Tensor:
    """``q_BA`` with illegal actions at ``-inf`` (``mask_BA`` ``None``: unchanged)."""
    if mask_BA is None:
        return q_BA
    return q_BA.masked_fill(~legal_actions(mask_BA, q_BA.shape), -torch.inf)


def _bootstrap(
    rewards_B: torch.Tensor, terminated_B: torch.Tensor, value_B: torch.Tensor, gamma: Discount
) -> torch.Tensor:
    return rewards_B + gamma * (1.0 - terminated_B.to(value_B.dtype)) * value_B


@torch.no_grad()
def q_learning_target(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    gamma: Discount,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """Q-learning target ``r + gamma * (1 - terminated) * max_{a' in L(s')} Q_targ(s', a')``, shape ``(B,)``."""
    _check(rewards_B, terminated_B, next_q_target_BA, gamma)
    return _bootstrap(rewards_B, terminated_B, _masked(next_q_target_BA, next_mask_BA).max(dim=1).values, gamma)


@torch.no_grad()
def double_q_target(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    next_q_online_BA: torch.Tensor,
    gamma: Discount,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """Double Q-learning target: the online network picks ``a*`` (among the legal actions), the target network
    values it.

    ``y = r + gamma * (1 - terminated) * Q_targ(s', argmax_{a' in L(s')} Q(s', a'))``, shape ``(B,)``
    (van Hasselt, Guez and Silver, 2016).
    """
    _check(rewards_B, terminated_B, next_q_target_BA, gamma)
    if next_q_online_BA.shape != next_q_target_BA.shape:
        raise ValueError(
            f"expected online and target Q-values of one shape, got {tuple(next_q_online_BA.shape)} "
            f"and {tuple(next_q_target_BA.shape)}"
        )
    best_B1 = _masked(next_q_online_BA, next_mask_BA).argmax(dim=1, keepdim=True)
    return _bootstrap(rewards_B, terminated_B, next_q_target_BA.gather(1, best_B1).squeeze(1), gamma)


@torch.no_grad()
def sarsa_target(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    next_actions_B: torch.Tensor,
    gamma: Discount,
) -> torch.Tensor:
    """Deep SARSA target ``r + gamma * (1 - terminated) * Q_targ(s', A')``, shape ``(B,)``.

    ``A'`` is drawn by the caller from the epsilon-greedy policy w.r.t. the online network at
    ``s'``, as in the lecture's algorithm box (line 13: "Select actions A' ~ pi(S')").
    """
    _check(rewards_B, terminated_B, next_q_target_BA, gamma)
    if next_actions_B.shape != rewards_B.shape:
        raise ValueError(f"expected next actions of shape {tuple(rewards_B.shape)}, got {tuple(next_actions_B.shape)}")
    value_B = next_q_target_BA.gather(1, next_actions_B.long().unsqueeze(1)).squeeze(1)
    return _bootstrap(rewards_B, terminated_B, value_B, gamma)


@torch.no_grad()
def expected_sarsa_target(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    next_probs_BA: torch.Tensor,
    gamma: Discount,
) -> torch.Tensor:
    """Expected SARSA target ``r + gamma * (1 - terminated) * sum_a' pi(a'|s') Q_targ(s', a')``.

    ``next_probs_BA`` is the behaviour policy at ``s'`` (rows sum to 1), here the epsilon-greedy
    policy w.r.t. the online network. Shape ``(B,)``.
    """
    _check(rewards_B, terminated_B, next_q_target_BA, gamma)
    if next_probs_BA.shape != next_q_target_BA.shape:
        raise ValueError(
            f"expected policy probabilities of shape {tuple(next_q_target_BA.shape)}, got {tuple(next_probs_BA.shape)}"
        )
    return _bootstrap(rewards_B, terminated_B, (next_probs_BA * next_q_target_BA).sum(dim=1), gamma)


@torch.no_grad()
def td_target(
    algo: str,
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_obs: torch.Tensor,
    q_net: Callable[[torch.Tensor], torch.Tensor],
    target_net: Callable[[torch.Tensor], torch.Tensor],
    gamma: Discount,
    epsilon: float,
    generator: torch.Generator | None = None,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """The target of ``algo`` for a batch, reading the networks at ``next_obs``; shape ``(B,)``.

    ``epsilon`` is the behaviour policy's current exploration rate (used by the SARSA targets);
    ``generator`` draws SARSA's ``A'``; ``next_mask_BA`` (bool, optional) the legal actions of ``s'``.
    """
    next_q_target_BA = target_net(next_obs)
    if algo == "dqn":
        return q_learning_target(rewards_B, terminated_B, next_q_target_BA, gamma, next_mask_BA)
    next_q_online_BA = q_net(next_obs)
    if algo == "double":
        return double_q_target(rewards_B, terminated_B, next_q_target_BA, next_q_online_BA, gamma, next_mask_BA)
    probs_BA = epsilon_greedy_probs(next_q_online_BA, epsilon, next_mask_BA)
    if algo == "sarsa":
        next_actions_B = torch.multinomial(probs_BA, 1, generator=generator).squeeze(1)
        return sarsa_target(rewards_B, terminated_B, next_q_target_BA, next_actions_B, gamma)
    if algo == "expected-sarsa":
        return expected_sarsa_target(rewards_B, terminated_B, next_q_target_BA, probs_BA, gamma)
    raise ValueError(f"unknown algorithm {algo!r}; expected one of {', '.join(ALGORITHMS)}")


def td_loss(
    q_sa_B: torch.Tensor, target_B: torch.Tensor, loss: str = "mse", weights_B: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean TD loss between ``Q(s, a)`` and its target: squared error (the lecture's) or Huber.

    ``L = 1/B * sum_i w_i l(y_i - Q(s_i, a_i))`` with ``l(d) = d^2`` for ``"mse"``; ``"huber"``
    is quadratic within 1 of the target and linear beyond (the "error clipping" of Mnih et al.,
    2015). ``weights_B`` are prioritized replay's importance-sampling weights (Schaul et al.,
    2016); without them every ``w_i`` is 1 and the plain mean is taken.
    """
    if q_sa_B.shape != target_B.shape or q_sa_B.dim() != 1:
        raise ValueError(
            f"expected Q(s, a) and targets of one shape (B,), got {tuple(q_sa_B.shape)} and {tuple(target_B.shape)}"
        )
    if weights_B is not None and weights_B.shape != q_sa_B.shape:
        raise ValueError(f"expected weights of shape {tuple(q_sa_B.shape)}, got {tuple(weights_B.shape)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    fn = F.mse_loss if loss == "mse" else F.smooth_l1_loss
    if weights_B is None:
        return fn(q_sa_B, target_B)
    return (weights_B * fn(q_sa_B, target_B, reduction="none")).mean()


# Distributional (C51) targets: Bellemare, Dabney and Munos, 2017, "A Distributional Perspective on
# Reinforcement Learning". The return's distribution is a categorical over ``Z`` atoms, the support
# ``z_j = v_min + j * dz`` with ``dz = (v_max - v_min) / (Z - 1)``; ``Q(s, a) = sum_j z_j p_j(s, a)``.
# Shapes add ``Z`` atoms: ``probs_BAZ`` is a batch of distributions, one per action.


def _check_categorical(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_probs_BZ: torch.Tensor,
    support_Z: torch.Tensor,
    gamma: Discount,
) -> None:
    if support_Z.dim() != 1 or support_Z.shape[0] < 2:
        raise ValueError(f"expected a support of shape (Z,) with Z >= 2 atoms, got {tuple(support_Z.shape)}")
    if not bool(support_Z[-1] > support_Z[0]):
        raise ValueError(f"expected an increasing support (v_min < v_max), got {support_Z[0]} .. {support_Z[-1]}")
    if next_probs_BZ.dim() != 2 or next_probs_BZ.shape[1] != support_Z.shape[0]:
        raise ValueError(
            f"expected next-state distributions of shape (B, {support_Z.shape[0]}) to match the support, "
            f"got {tuple(next_probs_BZ.shape)}"
        )
    _check(rewards_B, terminated_B, next_probs_BZ, gamma)


@torch.no_grad()
def categorical_projection(
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_probs_BZ: torch.Tensor,
    support_Z: torch.Tensor,
    gamma: Discount,
) -> torch.Tensor:
    """Project the n-step target distribution onto the support (Bellemare et al., 2017, Algorithm 1); ``(B, Z)``.

    Atom ``z_j`` of ``s'`` (probability ``p_j``) moves to ``Tz_j = r + gamma^k (1 - terminated) z_j``,
    clipped to ``[v_min, v_max]``, and its mass is split between the two support points around it in
    proportion to closeness: with ``b = (Tz_j - v_min) / dz``, ``l = floor(b)``, ``u = ceil(b)``,

        m_l += p_j (u - b),   m_u += p_j (b - l)   (all of p_j to l when Tz_j falls on a support point).

    A terminated transition puts all its mass at ``clip(r)``; a truncated one (``terminated`` false) is
    bootstrapped like any other. ``gamma`` is one discount or ``gamma^k`` per transition ``(B,)``.
    """
    _check_categorical(rewards_B, terminated_B, next_probs_BZ, support_Z, gamma)
    atoms = support_Z.shape[0]
    v_min, v_max = float(support_Z[0]), float(support_Z[-1])
    dz = (v_max - v_min) / (atoms - 1)
    dtype = next_probs_BZ.dtype  # one dtype throughout, whatever the rewards' and discounts' (scatter_add_ needs it)
    discount = gamma.to(dtype) if isinstance(gamma, torch.Tensor) else gamma
    scale_B = discount * (1.0 - terminated_B.to(dtype))
    tz_BZ = rewards_B.to(dtype)[:, None] + scale_B[:, None] * support_Z.to(dtype)[None, :]
    b_BZ = ((tz_BZ.clamp(v_min, v_max) - v_min) / dz).clamp(0, atoms - 1)  # rounding must not leave [0, Z - 1]
    lower_BZ, upper_BZ = b_BZ.floor(), b_BZ.ceil()
    on_point_BZ = (lower_BZ == upper_BZ).to(b_BZ.dtype)
    m_BZ = torch.zeros_like(next_probs_BZ)
    m_BZ.scatter_add_(1, lower_BZ.long(), next_probs_BZ * (upper_BZ - b_BZ + on_point_BZ))
    m_BZ.scatter_add_(1, upper_BZ.long(), next_probs_BZ * (b_BZ - lower_BZ))
    return m_BZ


@torch.no_grad()
def categorical_next_distribution(
    algo: str,
    next_probs_target_BAZ: torch.Tensor,
    next_q_online_BA: torch.Tensor | None,
    support_Z: torch.Tensor,
    epsilon: float,
    generator: torch.Generator | None = None,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """The distribution at ``s'`` that ``algo`` bootstraps from, read from the target network: ``(B, Z)``.

    ``dqn``: ``p_targ(s', a*)`` with ``a* = argmax_a E[Z_targ(s', a)]``; ``double``: ``a*`` by the online
    network's expected Q (Hessel et al., 2018); ``sarsa``: ``A' ~ pi(s')``, the epsilon-greedy policy w.r.t.
    the online expected Q; ``expected-sarsa``: the mixture ``sum_a pi(a | s') p_targ(s', a)``.
    ``next_q_online_BA`` (the online expected Q at ``s'``) may be ``None`` for ``dqn`` only. With
    ``next_mask_BA`` (bool, True where legal) ``a*``, ``A'`` and ``pi`` range over the legal actions of ``s'``.
    """
    if next_probs_target_BAZ.dim() != 3 or next_probs_target_BAZ.shape[2] != support_Z.shape[0]:
        raise ValueError(
            f"expected target distributions of shape (B, A, {support_Z.shape[0]}), got "
            f"{tuple(next_probs_target_BAZ.shape)}"
        )
    if algo == "dqn":
        select_BA = (next_probs_target_BAZ * support_Z).sum(dim=2)
    elif next_q_online_BA is None or next_q_online_BA.shape != next_probs_target_BAZ.shape[:2]:
        raise ValueError(
            f"{algo} needs the online expected Q at s' of shape {tuple(next_probs_target_BAZ.shape[:2])}, got "
            f"{None if next_q_online_BA is None else tuple(next_q_online_BA.shape)}"
        )
    else:
        select_BA = next_q_online_BA
    if algo in ("dqn", "double"):
        best_B = _masked(select_BA, next_mask_BA).argmax(dim=1)
    elif algo in ("sarsa", "expected-sarsa"):
        probs_BA = epsilon_greedy_probs(select_BA, epsilon, next_mask_BA)
        if algo == "expected-sarsa":
            return (probs_BA.unsqueeze(2) * next_probs_target_BAZ).sum(dim=1)
        best_B = torch.multinomial(probs_BA, 1, generator=generator).squeeze(1)
    else:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {', '.join(ALGORITHMS)}")
    return next_probs_target_BAZ[torch.arange(len(best_B), device=best_B.device), best_B]


@torch.no_grad()
def categorical_td_target(
    algo: str,
    rewards_B: torch.Tensor,
    terminated_B: torch.Tensor,
    next_obs: torch.Tensor,
    log_probs_net: Callable[[torch.Tensor], torch.Tensor],
    target_log_probs_net: Callable[[torch.Tensor], torch.Tensor],
    support_Z: torch.Tensor,
    gamma: Discount,
    epsilon: float,
    generator: torch.Generator | None = None,
    next_mask_BA: torch.Tensor | None = None,
) -> torch.Tensor:
    """The projected target distribution ``m`` of ``algo`` for a batch, read at ``next_obs``: ``(B, Z)``.

    The networks map observations to log-probabilities ``(B, A, Z)``; the online one is read only to
    choose (or weight) the next action, among the legal ones of ``next_mask_BA`` if given.
    """
    next_probs_target_BAZ = target_log_probs_net(next_obs).exp()
    next_q_online_BA = None
    if algo != "dqn":
        next_q_online_BA = (log_probs_net(next_obs).exp() * support_Z).sum(dim=2)
    next_probs_BZ = categorical_next_distribution(
        algo, next_probs_target_BAZ, next_q_online_BA, support_Z, epsilon, generator, next_mask_BA
    )
    return categorical_projection(rewards_B, terminated_B, next_probs_BZ, support_Z, gamma)


def categorical_loss(
    log_probs_sa_BZ: torch.Tensor, target_BZ: torch.Tensor, weights_B: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy between the projected target ``m`` and ``p(s, a)``: ``(mean loss, per-transition loss (B,))``.

    ``L = 1/B sum_i w_i l_i`` with ``l_i = -sum_j m_ij log p_j(s_i, a_i)`` (Bellemare et al., 2017);
    ``w_i`` are prioritized replay's importance weights. Rainbow (Hessel et al., 2018) sets the
    priorities from ``l_i`` (detached here) instead of ``|TD error|``.
    """
    if log_probs_sa_BZ.dim() != 2 or log_probs_sa_BZ.shape != target_BZ.shape:
        raise ValueError(
            f"expected log-probabilities and targets of one shape (B, Z), got {tuple(log_probs_sa_BZ.shape)} "
            f"and {tuple(target_BZ.shape)}"
        )
    if weights_B is not None and weights_B.shape != log_probs_sa_BZ.shape[:1]:
        raise ValueError(f"expected weights of shape ({log_probs_sa_BZ.shape[0]},), got {tuple(weights_B.shape)}")
    loss_B = -(target_BZ * log_probs_sa_BZ).sum(dim=1)
    loss = loss_B.mean() if weights_B is None else (weights_B * loss_B).mean()
    return loss, loss_B.detach()
