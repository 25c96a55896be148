"""SumTree against brute force: prefix search, zero leaves, stratified draws, frequencies, rebuilds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dueldqn.replay import SumTree


def _tree(leaves: list[float] | np.ndarray) -> SumTree:
    tree = SumTree(len(leaves))
    tree.update(np.arange(len(leaves)), np.asarray(leaves, dtype=np.float64))
    return tree


def test_tree_is_a_pure_function_of_its_leaves_after_many_updates() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(1000)  # not a power of two: P = 1024
    assert tree.size == 1024 and tree.depth == 10
    for _ in range(300):
        k = int(rng.integers(1, 70))
        indices_K = rng.integers(0, 1000, size=k)  # with duplicates
        priorities_K = rng.exponential(size=k) * (rng.random(k) > 0.2)  # some zeros
        tree.update(indices_K, priorities_K)
    rebuilt = SumTree(1000)
    rebuilt.load_state_dict(tree.state_dict())
    assert np.array_equal(tree.sum_tree, rebuilt.sum_tree)  # bitwise: no drift
    assert np.array_equal(tree.min_tree, rebuilt.min_tree)
    internal = np.arange(1, tree.size)
    assert np.array_equal(tree.sum_tree[internal], tree.sum_tree[2 * internal] + tree.sum_tree[2 * internal + 1])
    assert tree.total == pytest.approx(math.fsum(tree.leaves), rel=1e-12)
    assert tree.min_nonzero == tree.leaves[tree.leaves > 0].min()
    assert (tree.sum_tree[tree.size + 1000 :] == 0).all()  # padding untouched


def test_single_leaf_updates_give_the_same_bits_as_a_rebuild() -> None:
    rng = np.random.default_rng(10)
    tree = SumTree(777)  # one-leaf updates take the scalar path
    for i, p in zip(
        rng.integers(0, 777, size=2000), rng.exponential(size=2000) * (rng.random(2000) > 0.1), strict=True
    ):
        tree.update(np.array([i]), np.array([p]))
    rebuilt = SumTree(777)
    rebuilt.load_state_dict(tree.state_dict())
    assert np.array_equal(tree.sum_tree, rebuilt.sum_tree) and np.array_equal(tree.min_tree, rebuilt.min_tree)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([0]), np.array([np.inf]))


def test_duplicate_indices_last_one_wins() -> None:
    tree = SumTree(4)
    tree.update(np.array([2, 1, 2, 2]), np.array([5.0, 1.0, 7.0, 3.0]))
    assert tree.leaves.tolist() == [0.0, 1.0, 3.0, 0.0]
    assert tree.total == 4.0 and tree.min_nonzero == 1.0


def test_find_matches_searchsorted_on_cumsum_including_boundaries() -> None:
    # integer priorities: every sum is exact, so boundaries can be tested exactly
    leaves = np.array([3, 0, 0, 1, 4, 0, 2, 5, 0, 0, 1, 6, 0], dtype=np.float64)  # 13 leaves, P = 16
    tree = _tree(leaves)
    cum = np.cumsum(leaves)
    assert tree.total == 22.0
    boundaries = np.arange(0, 22, dtype=np.float64)  # every integer mass, each a leaf boundary or inside one
    rng = np.random.default_rng(1)
    prefix = np.concatenate([boundaries, boundaries + 0.5, rng.random(1000) * 22])
    expected = np.searchsorted(cum, prefix, side="right")
    assert np.array_equal(tree.find(prefix), expected)
    # hand-checked: mass 3 is the first unit of leaf 3 (leaves 1, 2 are empty); 4 starts leaf 4
    assert tree.find(np.array([0.0, 2.999, 3.0, 4.0, 7.99, 8.0])).tolist() == [0, 0, 3, 4, 4, 6]


def test_zero_leaves_are_never_returned_even_at_or_past_the_total() -> None:
    tree = _tree([0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0])  # last non-zero leaf is 4, trailing zeros and padding
    assert tree.find(np.array([5.0, 4.9999999, 1e9, np.inf])).tolist() == [4, 4, 4, 4]
    assert tree.find(np.array([0.0, -1.0, -np.inf])).tolist() == [1, 1, 1]
    draws = tree.sample(10_000, np.random.default_rng(2))
    assert set(np.unique(draws).tolist()) == {1, 4}


def test_the_descent_never_enters_an_empty_subtree() -> None:
    # In float64 with exact (Sterbenz) subtractions a mass below the total stays inside the
    # subtree it enters, so the guard is tested white-box: a root sum rounded up lets a mass
    # pass the non-empty leaf 2, and only the guard keeps it out of the empty leaf 3.
    tree = _tree([1.0, 1.0, 1.0, 0.0])
    tree.sum_tree[1] = 3.5
    assert tree.find(np.array([3.2, 3.49])).tolist() == [2, 2]
    tree = _tree([0.0, 0.0, 0.0, 2.0])  # empty left subtrees are skipped at every level
    assert tree.find(np.array([0.0, 1.0, 2.0])).tolist() == [3, 3, 3]


def test_stratified_draws_each_fall_in_their_own_segment() -> None:
    tree = _tree(np.ones(16))  # leaf i covers mass [i, i + 1)
    rng = np.random.default_rng(3)
    for _ in range(50):
        draws = tree.sample(4, rng)  # segment k is [4k, 4k + 4): leaves 4k .. 4k + 3
        assert (draws // 4 == np.arange(4)).all()
    assert (tree.sample(16, rng) == np.arange(16)).all()  # one leaf per segment


def test_sampling_frequencies_match_the_priorities() -> None:
    leaves = np.array([1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 5.0])
    tree = _tree(leaves)
    rng = np.random.default_rng(4)
    draws = np.concatenate([tree.sample(100, rng) for _ in range(2000)])  # 200k draws
    freq = np.bincount(draws, minlength=7) / len(draws)
    prob = leaves / leaves.sum()
    sigma = np.sqrt(prob * (1 - prob) / len(draws))  # binomial; stratification only lowers it
    assert (np.abs(freq - prob) <= 4 * sigma + 1e-12).all(), (freq, prob)
    assert freq[2] == 0 and freq[5] == 0


def test_min_nonzero_and_total() -> None:
    tree = SumTree(5)
    assert tree.total == 0.0 and tree.min_nonzero == math.inf
    tree.update(np.array([0, 3]), np.array([4.0, 0.5]))
    assert tree.total == 4.5 and tree.min_nonzero == 0.5
    tree.update(np.array([3]), np.array([0.0]))  # the minimum goes to zero: no longer counted
    assert tree.total == 4.0 and tree.min_nonzero == 4.0
    tree.update(np.array([0]), np.array([0.0]))
    assert tree.total == 0.0 and tree.min_nonzero == math.inf
    with pytest.raises(ValueError, match="all 0"):
        tree.find(np.array([0.0]))


def test_capacity_one_and_bad_input() -> None:
    tree = _tree([2.5])
    assert tree.size == 1 and tree.find(np.array([0.0, 2.5])).tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tree.update(np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="leaves"):
        tree.load_state_dict({"leaves": np.zeros(2)})
