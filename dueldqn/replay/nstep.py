"""n-step returns, folded at sampling time from the one-step transitions a replay stores.

For a sampled transition at slot ``i`` (``s_t, a_t, r_t, s_{t+1}``) the ``n``-step target is

    y = sum_{j<k} gamma^j r_{t+j} + gamma^k (1 - terminated_{t+k-1}) bootstrap(s_{t+k})

where the window of ``k <= n`` transitions follows the same env's stream and stops early

- at a termination (``terminated`` masks the bootstrap),
- at a truncation (the episode's last transition keeps its real final observation and is
  bootstrapped from, as a one-step truncated transition is),
- where the stream has no later transition yet (the ring's newest slot for that env),

and never crosses the next-step autoreset step (never stored) or another env's stream: the
window follows ``next_S``, a per-slot link to the same stream's following transition that the
storage writes when it adds that transition (``-1``: none yet, or the episode ended). Folding at
sampling time, as Dopamine's replay does, keeps one copy of each transition (and each Atari frame)
and makes ``n`` a setting of the sampler, not of what was stored; ``n = 1`` returns the stored
transition unchanged.

Shapes: ``S`` slots of the storage, ``B`` sampled transitions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class NStepFold(NamedTuple):
    """The folded window of each sampled transition."""

    returns_B: np.ndarray  # float32, sum_{j<k} gamma^j r_{t+j}
    last_B: np.ndarray  # int64, slot of the window's last transition: its s' and terminated are the bootstrap's
    discounts_B: np.ndarray  # float32, gamma^k: what multiplies the bootstrap value
    steps_B: np.ndarray  # int64, k: transitions folded (1 <= k <= n)


def fold_n_step(
    slots_B: np.ndarray,
    *,
    rewards_S: np.ndarray,
    terminated_S: np.ndarray,
    next_S: np.ndarray,
    n: int,
    gamma: float,
) -> NStepFold:
    """Fold up to ``n`` transitions of each sampled slot's stream into one return (vectorised over ``B``).

    Args:
        slots_B: sampled slots, each holding a transition.
        rewards_S: every slot's one-step reward.
        terminated_S: every slot's termination flag (bool or 0/1).
        next_S: the slot of the same stream's next transition, or ``-1`` where the window must stop
            (none stored yet, the episode ended by termination or truncation).
        n: the most transitions to fold (``n >= 1``).
        gamma: the discount.

    Returns:
        The returns, the last slot of each window, ``gamma^k`` and ``k``. The rewards are summed in
        float32 in time order, ``((r_t + gamma r_{t+1}) + gamma^2 r_{t+2}) + ...``.
    """
    if n < 1:
        raise ValueError(f"n-step returns need n >= 1, got {n}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"expected a discount gamma in [0, 1], got {gamma}")
    slots_B = np.asarray(slots_B, dtype=np.int64)
    last_B = slots_B.copy()
    returns_B = rewards_S[slots_B].astype(np.float32)
    discount_B = np.full(len(slots_B), gamma, dtype=np.float32)  # gamma^k after k transitions
    steps_B = np.ones(len(slots_B), dtype=np.int64)
    gamma32 = np.float32(gamma)
    for _ in range(n - 1):
        following_B = next_S[last_B]
        going_B = (following_B >= 0) & ~np.asarray(terminated_S[last_B], dtype=bool)
        if not going_B.any():
            break
        step_B = np.where(going_B, following_B, last_B)
        returns_B = np.where(going_B, returns_B + discount_B * rewards_S[step_B].astype(np.float32), returns_B)
        discount_B = np.where(going_B, discount_B * gamma32, discount_B)
        steps_B += going_B
        last_B = step_B
    return NStepFold(returns_B.astype(np.float32), last_B, discount_B.astype(np.float32), steps_B)


def fold_consecutive(
    rewards_BK: np.ndarray, terminated_BK: np.ndarray, linked_BK: np.ndarray, *, n: int, gamma: float
) -> NStepFold:
    """:func:`fold_n_step` over windows of ``K = n`` consecutive slots, one row per sampled transition.

    For storages whose stream goes on in the next slot (the frame replay's per-env rings): row
    ``b`` holds the sampled transition (column 0) and the ``n - 1`` slots after it, and
    ``linked_BK[b, k]`` says whether the transition in column ``k + 1`` continues the one in
    column ``k`` (the last column is ignored). ``last_B`` of the result is the column where each
    window ends, ``0 <= last_B < n``.
    """
    b, k = rewards_BK.shape
    if k != n or terminated_BK.shape != (b, k) or linked_BK.shape != (b, k):
        raise ValueError(
            f"expected rewards, terminated and links of shape (B, n={n}), got {rewards_BK.shape}, "
            f"{terminated_BK.shape} and {linked_BK.shape}"
        )
    local_BK = np.arange(b * k, dtype=np.int64).reshape(b, k)  # each window's slots, numbered apart
    next_BK = np.full((b, k), -1, dtype=np.int64)
    next_BK[:, :-1] = np.where(linked_BK[:, :-1], local_BK[:, 1:], -1)
    fold = fold_n_step(
        local_BK[:, 0],
        rewards_S=rewards_BK.reshape(-1),
        terminated_S=terminated_BK.reshape(-1),
        next_S=next_BK.reshape(-1),
        n=n,
        gamma=gamma,
    )
    return fold._replace(last_B=fold.last_B - local_BK[:, 0])
