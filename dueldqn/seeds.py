"""Every seed a run derives from its config's ``seed``, named in one place.

A run's random streams must never coincide: the training envs, the two evaluations (during training and
final), the evaluation policies' epsilon draws, Ape-X's runners and shards, and the envs a resumed run
resets. Env ``i`` of a vector env reset with seed ``s`` is seeded ``s + i``, so each use owns a range:

- training envs: ``seed + i`` (:func:`dueldqn.envs.make_vec_env`);
- the final evaluation's envs: ``seed + FINAL_EVAL + i``; its policy's draws: ``seed + FINAL_EVAL_POLICY``;
- evaluations during training: ``seed + TRAINING_EVAL + i``; their policy's: ``seed + TRAINING_EVAL_POLICY``;
- the envs of a resumed run whose envs could not be restored: ``seed + RESUMED_ENVS + steps + i``;
- Ape-X runner ``r`` in its life ``l``: ``SeedSequence([seed, RUNNER_STREAM, r, l])``, for its envs and draws;
- Ape-X replay shard ``s``: ``SeedSequence([seed, SHARD_STREAM, s])``, for its sampling.

The resumed envs' range starts a billion above the run's seed, far past the evaluations' ranges
(``FINAL_EVAL`` and ``TRAINING_EVAL`` plus the evaluation's env count): a run resumed at step 10,000
no longer resets its envs with the final evaluation's seed, as ``seed + steps`` did.
"""

from __future__ import annotations

import numpy as np

FINAL_EVAL_POLICY = 1
TRAINING_EVAL_POLICY = 2
FINAL_EVAL = 10_000
TRAINING_EVAL = 20_000
RESUMED_ENVS = 1_000_000_000
RUNNER_STREAM = 12
SHARD_STREAM = 13


def resumed_env_seed(seed: int, steps: int) -> int:
    """The seed that resets the envs of a run resumed at ``steps`` whose envs could not be restored.

    Distinct for each resume step, and never one of the evaluations' seeds (their ranges end below
    ``seed + RESUMED_ENVS``)."""
    return seed + RESUMED_ENVS + steps


def runner_seed(seed: int, runner: int, incarnation: int) -> int:
    """A seed for Ape-X runner ``runner``'s envs and draws, independent of every other runner and life."""
    return int(np.random.SeedSequence([seed, RUNNER_STREAM, runner, incarnation]).generate_state(1)[0])


def shard_rng(seed: int, shard: int) -> np.random.Generator:
    """Ape-X replay shard ``shard``'s sampling generator."""
    return np.random.default_rng([seed, SHARD_STREAM, shard])
