"""A sum tree (with a min tree beside it) over non-negative priorities, for proportional sampling.

Prioritized replay (Schaul et al., 2016, appendix B.2.1) samples leaf ``i`` with probability
``P(i) = p_i / sum_k p_k``. A binary tree whose every node holds the sum of its two children
finds the leaf of a prefix mass ``m`` in ``log2(P)`` steps, where ``P`` is the capacity rounded up
to a power of two:

    leaf(m) = the i with  sum_{k < i} p_k <= m < sum_{k <= i} p_k

Layout (TorchRL's and Tianshou's): flat ``float64`` arrays of ``2P`` nodes, root at 1, the
children of node ``j`` at ``2j`` and ``2j + 1``, leaf ``i`` at ``P + i``; padding leaves hold 0.
The min tree holds ``min`` instead of ``+`` over the leaves that are positive (``+inf`` for a
zero leaf), which gives the largest importance-sampling weight of the buffer.

Every update recomputes each touched parent from its two children, level by level, and never
adds deltas: the tree is then a pure function of its leaves (bitwise), so it does not drift
(Dopamine's delta-propagated tree does, google-deepmind/reverb#43) and a checkpoint needs only
the leaves. Batches are vectorised, with one Python loop over the levels; a single leaf (the
per-step ``add`` of one env) walks up with scalars, which does the same IEEE additions. Costs are
in ``BENCHMARKS.md`` (``python -m benchmarks.bench_replay``).

Shape suffixes: ``K`` leaves being updated, ``B`` prefixes or samples.
"""

from __future__ import annotations

import math

import numpy as np


class SumTree:
    """Sums and minima over ``capacity`` non-negative leaves, with proportional sampling.

    Args:
        capacity: number of leaves (rounded up to a power of two inside; the padding stays 0).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree needs at least one leaf, got capacity {capacity}")
        self.capacity = int(capacity)
        self.size = 1 << (self.capacity - 1).bit_length()  # P, a power of two >= capacity
        self.depth = self.size.bit_length() - 1  # log2(P) levels below the root
        self.sum_tree = np.zeros(2 * self.size, dtype=np.float64)
        self.min_tree = np.full(2 * self.size, np.inf, dtype=np.float64)

    # --- reading ---------------------------------------------------------------------------

    @property
    def leaves(self) -> np.ndarray:
        """``(capacity,)`` float64 view of the priorities (do not write to it: use :meth:`update`)."""
        return self.sum_tree[self.size : self.size + self.capacity]

    @property
    def total(self) -> float:
        """``sum_i p_i`` over all leaves."""
        return float(self.sum_tree[1])

    @property
    def min_nonzero(self) -> float:
        """``min_{i: p_i > 0} p_i``; ``+inf`` when every leaf is 0."""
        return float(self.min_tree[1])

    # --- writing ---------------------------------------------------------------------------

    def update(self, indices_K: np.ndarray, priorities_K: np.ndarray) -> None:
        """Set ``p[indices_K] = priorities_K`` (the last one wins for a repeated index).

        Each ancestor of a changed leaf is then recomputed from its two children, one level at a
        time: ``s_j = s_{2j} + s_{2j+1}``, ``m_j = min(m_{2j}, m_{2j+1})``. A shared ancestor is
        recomputed once per changed leaf below it, each time to the same value, which is cheaper
        than deduplicating every level. One leaf (a one-env ``add``) takes a scalar walk up:
        the same IEEE additions, so the same bits, without numpy's per-call overhead.

        Raises:
            ValueError: for an index outside ``[0, capacity)``, a negative or non-finite priority,
                or arrays of different lengths.
        """
        indices_K = np.asarray(indices_K, dtype=np.int64).reshape(-1)
        priorities_K = np.asarray(priorities_K, dtype=np.float64).reshape(-1)
        if indices_K.shape != priorities_K.shape:
            raise ValueError(
                f"SumTree.update needs as many priorities as indices, got {priorities_K.shape} and {indices_K.shape}"
            )
        if len(indices_K) == 0:
            return
        if len(indices_K) == 1:
            self._update_one(int(indices_K[0]), float(priorities_K[0]))
            return
        if indices_K.min() < 0 or indices_K.max() >= self.capacity:
            raise ValueError(f"SumTree.update: leaf indices must be in [0, {self.capacity}), got {indices_K}")
        if not np.isfinite(priorities_K).all() or priorities_K.min() < 0:
            raise ValueError(f"SumTree.update: priorities must be finite and >= 0, got {priorities_K}")
        # last wins: np.unique of the reversed indices gives each index's last occurrence
        last_K = len(indices_K) - 1 - np.unique(indices_K[::-1], return_index=True)[1]
        node_K = indices_K[last_K] + self.size  # sorted, distinct
        values_K = priorities_K[last_K]
        self.sum_tree[node_K] = values_K
        self.min_tree[node_K] = np.where(values_K > 0, values_K, np.inf)
        sums, mins = self.sum_tree, self.min_tree
        # Node j's children 2j and 2j+1 are row j of the (P, 2) view: one gather fetches both.
        sum_pairs, min_pairs = sums.reshape(-1, 2), mins.reshape(-1, 2)
        for _ in range(self.depth):  # take/put: the cheapest numpy gathers for small batches
            node_K >>= 1
            children_K2 = sum_pairs.take(node_K, axis=0)
            sums.put(node_K, children_K2[:, 0] + children_K2[:, 1])
            children_K2 = min_pairs.take(node_K, axis=0)
            mins.put(node_K, np.minimum(children_K2[:, 0], children_K2[:, 1]))

    def _update_one(self, index: int, priority: float) -> None:
        """:meth:`update` of one leaf, walking up with scalars."""
        if not 0 <= index < self.capacity:
            raise ValueError(f"SumTree.update: leaf indices must be in [0, {self.capacity}), got {index}")
        if not 0.0 <= priority < math.inf:
            raise ValueError(f"SumTree.update: priorities must be finite and >= 0, got {priority}")
        sums, mins = self.sum_tree, self.min_tree
        node = index + self.size
        sums[node] = priority
        mins[node] = priority if priority > 0 else math.inf
        while node > 1:
            node >>= 1
            sums[node] = sums[2 * node] + sums[2 * node + 1]
            left_min, right_min = mins[2 * node], mins[2 * node + 1]
            mins[node] = left_min if left_min <= right_min else right_min

    def _rebuild(self) -> None:
        """Recompute every internal node from the leaves (the same additions as :meth:`update`)."""
        leaves = self.sum_tree[self.size :]
        self.min_tree[self.size :] = np.where(leaves > 0, leaves, np.inf)
        width = self.size // 2
        while width >= 1:
            node = np.arange(width, 2 * width)
            self.sum_tree[node] = self.sum_tree[2 * node] + self.sum_tree[2 * node + 1]
            self.min_tree[node] = np.minimum(self.min_tree[2 * node], self.min_tree[2 * node + 1])
            width //= 2

    # --- sampling --------------------------------------------------------------------------

    def find(self, prefix_B: np.ndarray) -> np.ndarray:
        """``(B,)`` int64: the leaf ``i`` with ``sum_{k<i} p_k <= m < sum_{k<=i} p_k`` for each mass ``m``.

        Guards against float rounding (pytorch/rl#2230, flashbax#52): ``m`` is clipped into
        ``[0, total)``, and the descent never enters a subtree whose sum is 0, so a zero-priority
        leaf (or a padding leaf) is never returned, even for ``m == total``. Ties go right, as
        ``np.searchsorted(np.cumsum(p), m, side="right")``.

        Raises:
            ValueError: when every priority is 0.
        """
        total = self.sum_tree[1]
        if not total > 0:
            raise ValueError("cannot sample from a SumTree whose priorities are all 0")
        mass_B = np.clip(np.asarray(prefix_B, dtype=np.float64), 0.0, np.nextafter(total, 0.0))
        node_B = np.ones(mass_B.shape, dtype=np.int64)
        child_pairs = self.sum_tree.reshape(-1, 2)  # row j: the sums of node j's children 2j, 2j+1
        for _ in range(self.depth):
            children_B2 = child_pairs.take(node_B, axis=0)
            left_sum_B = children_B2[:, 0]
            # right when the mass is past the left subtree, unless the right one is empty (rounding)
            right_B = children_B2[:, 1] > 0
            right_B &= mass_B >= left_sum_B
            mass_B -= left_sum_B * right_B  # minus 0.0 leaves the mass as it is
            node_B = 2 * node_B + right_B
        return node_B - self.size

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``(B,)`` int64 leaves drawn with ``P(i) = p_i / total``, stratified.

        Segment ``k`` of ``B`` draws its mass uniformly in ``[k total / B, (k + 1) total / B)``
        (Schaul et al., 2016, appendix B.2.1): still ``P(i)`` per draw on average, with less
        variance across the batch.
        """
        mass_B = (np.arange(batch_size) + rng.random(batch_size)) * (self.total / batch_size)
        return self.find(mass_B)

    # --- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """The leaves only: the rest of the tree is a function of them."""
        return {"leaves": self.leaves.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore the leaves and rebuild the tree: bitwise the tree that :meth:`state_dict` saw."""
        leaves = np.asarray(state["leaves"], dtype=np.float64)
        if leaves.shape != (self.capacity,):
            raise ValueError(f"SumTree state has {leaves.shape} leaves, this tree has ({self.capacity},)")
        self.sum_tree[:] = 0.0
        self.sum_tree[self.size : self.size + self.capacity] = leaves
        self._rebuild()
