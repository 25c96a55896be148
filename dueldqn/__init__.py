"""dueldqn: deep Q-learning around the Dueling DQN network."""

from dueldqn.networks import (
    MLP,
    DuelDQN,
    DuelingHead,
    NatureCNN,
    QHead,
    QNetwork,
    build_q_network,
    preprocess_frames,
)

__all__ = [
    "MLP",
    "DuelDQN",
    "DuelingHead",
    "NatureCNN",
    "QHead",
    "QNetwork",
    "build_q_network",
    "preprocess_frames",
]
__version__ = "0.1.0"
