"""A real learning test: the tuned ``cartpole`` preset (Double DQN, dueling MLP) balances CartPole.

It must pass on any CPU. Float rounding differs between CPUs and BLAS kernels (AVX2 against
AVX-512, OpenBLAS against MKL), so a run is reproducible on one machine but another machine runs
another trajectory of the same quality. The test therefore uses settings that learn with a wide
margin and a threshold far inside the spread measured over many seeds, not a value that holds
bit for bit on one CPU. The previous version of this test (25k steps, 1e-3, Polyak 0.01) gave
500, 241 and 267 on seeds 0-2 of an AMD EPYC and 146.6 on seed 0 of an Intel Xeon: a setting at
the edge of learning, falling on either side of its threshold by CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dueldqn.config import resolve_config
from dueldqn.logger import read_metrics
from dueldqn.training import train


@pytest.mark.slow
def test_cartpole_preset_is_learned(tmp_path: Path) -> None:
    # The preset reached the maximum, 500.0 +- 0.0 over 20 greedy episodes, on every seed measured:
    # seeds 0-7 on an Intel Xeon with AVX-512 (BENCHMARKS.md) and seeds 0-7 on an AMD EPYC. Asking
    # for 400 (CartPole-v1 counts 475 as solved) leaves room for a CPU whose run ends a little worse.
    config = resolve_config("CartPole-v1", None, {"seed": 0, "eval_episodes": 10})
    result = train(config, run_dir=tmp_path / "run", progress=False, tensorboard=False)
    assert result.summary["eval_mean_return"] >= 400.0, result.summary
    # The training episodes improve too: the last ten beat the first ten (random play: ~20 a
    # episode; the preset's last episodes, at epsilon 0.04, run to 200-500).
    returns = [row["return"] for row in read_metrics(result.run_dir)["episode"]]
    assert sum(returns[-10:]) > 5 * sum(returns[:10])
