"""dueldqn: deep Q-learning around the Dueling DQN network."""

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
__version__ = "0.1.0"

# The training API pulls in gymnasium, TensorBoard and matplotlib; it loads on first use so that
# `from dueldqn import DuelDQN` stays light.
_LAZY = {
    "train": "dueldqn.training",
    "Config": "dueldqn.config",
    "Agent": "dueldqn.agent",
    "resolve_config": "dueldqn.config",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dueldqn' has no attribute {name!r}")
