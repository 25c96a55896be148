"""dueldqn: deep Q-learning around the Dueling DQN network."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use (below)
    from dueldqn.agent import Agent
    from dueldqn.config import Config, resolve_config
    from dueldqn.networks import (
        MLP,
        DuelDQN,
        DuelingHead,
        MinAtarCNN,
        NatureCNN,
        QHead,
        QNetwork,
        build_q_network,
        preprocess_frames,
    )
    from dueldqn.training import train

__all__ = [
    "MLP",
    "Agent",
    "Config",
    "DuelDQN",
    "DuelingHead",
    "MinAtarCNN",
    "NatureCNN",
    "QHead",
    "QNetwork",
    "build_q_network",
    "preprocess_frames",
    "resolve_config",
    "train",
]
try:  # the one place the version is written is pyproject.toml; CHANGELOG.md says what each version changed
    __version__ = importlib.metadata.version("dueldqn")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

# Every name loads its module on first use: `import dueldqn.cli` (and so `dueldqn --help`) must not
# wait for torch, and `from dueldqn import DuelDQN` must not load TensorBoard or matplotlib.
_LAZY = {
    **dict.fromkeys(
        (
            "MLP",
            "DuelDQN",
            "DuelingHead",
            "MinAtarCNN",
            "NatureCNN",
            "QHead",
            "QNetwork",
            "build_q_network",
            "preprocess_frames",
        ),
        "dueldqn.networks",
    ),
    "train": "dueldqn.training",
    "Config": "dueldqn.config",
    "Agent": "dueldqn.agent",
    "resolve_config": "dueldqn.config",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dueldqn' has no attribute {name!r}")
