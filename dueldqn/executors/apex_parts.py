"""The Ape-X driver's bookkeeping: its counters, ``apex.csv`` and the log rows, the shards as one component.

Nothing here learns or talks to Ray; :mod:`dueldqn.executors.apex` uses these around its loop.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dueldqn.checkpoint import StateDict
from dueldqn.config import Config
from dueldqn.executors.session import Counters, Session

APEX_CSV = "apex.csv"
APEX_COLUMNS = (
    "step",
    "updates",
    "env_steps_per_s",
    "updates_per_s",
    "samples_per_insert",
    "weight_lag",
    "replay_size",
    "runner_episodes",
)


@dataclass(kw_only=True)
class ApexState(Counters):
    """The driver's counters: what a checkpoint holds besides the learner and replay."""

    transitions: int = 0  # rows the runners sent (steps minus the autoreset steps)
    runner_episodes: list[int] = field(default_factory=list)

    def state_dict(self) -> StateDict:
        """The counters, as JSON values, and the running loss."""
        return {**super().state_dict(), "runner_episodes": list(self.runner_episodes)}


@dataclass
class ApexResult:
    """What one Ape-X session did (tests and benchmarks read it; the summary gets the counters)."""

    state: ApexState
    seconds: float
    restarts: int  # runner restarts seen (new lives, and calls lost to a dead runner)
    versions: dict[int, list[int]]  # per runner, the weights version of each chunk, in order
    lives: dict[int, set[int]]  # per runner, the lives seen
    epsilons: dict[int, list[float]]  # per runner (from its flush)
    shards: list[dict[str, Any]]  # each shard's stats at the end
    lag_mean: float
    samples_per_insert: float


class Meter:
    """One log row: the session's (metrics.csv, TensorBoard), then apex.csv's Ape-X figures and the progress bar."""

    def __init__(self, config: Config, state: ApexState, session: Session, apex_file: Any, eps_mean: float) -> None:
        self.config, self.session, self.eps_mean, self.apex_file = config, session, eps_mean, apex_file
        self.time, self.updates = time.perf_counter(), state.updates

    def row(self, state: ApexState, version: int, lags: list[int], shards: list[dict[str, Any]]) -> None:
        """Write the interval since the last row; a NaN or infinite loss raises ``TrainingDiverged``."""
        sps, _ = self.session.log(state, self.eps_mean)
        now = time.perf_counter()
        ups = (state.updates - self.updates) / max(now - self.time, 1e-9)
        spi = state.updates * self.config.batch_size / max(state.transitions, 1)
        lag = float(np.mean(lags[-100:])) if lags else math.nan
        size = sum(shard["size"] for shard in shards)
        self.apex_file.csv.writerow(
            (
                state.steps,
                state.updates,
                f"{sps:.1f}",
                f"{ups:.1f}",
                f"{spi:.3g}",
                f"{lag:.3g}",
                size,
                " ".join(map(str, state.runner_episodes)),
            )
        )
        self.session.bar.set_description_str(
            f"{sps:,.0f} steps/s, {ups:,.0f} updates/s, spi {spi:.2g}, lag {lag:.0f}", refresh=False
        )
        tb = self.session.logger._tb  # RunLogger's TensorBoard writer (None without TensorBoard); it has no Ape-X rows
        if tb is not None:
            for name, value in (
                ("env_steps_per_s", sps),
                ("updates_per_s", ups),
                ("samples_per_insert", spi),
                ("weight_lag", lag),
                ("replay_size", size),
            ):
                tb.add_scalar(f"apex/{name}", value, state.steps)
        self.apex_file.flush()  # a row a few seconds: readable while the run goes on
        self.time, self.updates = now, state.updates


class ApexCsv:
    """``apex.csv``, a component: a resume drops the rows written after its checkpoint, as for ``metrics.csv``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists()
        self._file = path.open("a", newline="")
        self.csv = csv.writer(self._file)
        if new:
            self.csv.writerow(APEX_COLUMNS)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def state_dict(self) -> StateDict:
        self._file.flush()
        return {"apex_csv_bytes": self._file.tell()}

    def load_state_dict(self, state: StateDict) -> None:
        self._file.close()
        with self.path.open("r+b") as f:
            f.truncate(state["apex_csv_bytes"])
        self._file = self.path.open("a", newline="")
        self.csv = csv.writer(self._file)


class ShardsState:
    """Every replay shard as one checkpoint component (keys ``shard<s>/...``)."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def state_dict(self) -> StateDict:
        return dict(self.cluster.shard_states())

    def load_state_dict(self, state: StateDict) -> None:
        self.cluster.load_shard_states(state)


def samples_per_insert(config: Config) -> float:
    """The replay-ratio cap: ``config.max_samples_per_insert``, or the local loop's ratio."""
    if config.max_samples_per_insert > 0:
        return config.max_samples_per_insert
    return config.batch_size * config.gradient_steps / (config.train_frequency * config.num_envs)
