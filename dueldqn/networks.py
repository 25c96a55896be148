"""Q-networks: the spec's :class:`DuelDQN` and the parts it is built from.

Shape suffixes (used across the package): ``B`` batch, ``N`` parallel envs, ``A`` actions,
``C`` channels (stacked frames), ``H`` / ``W`` frame height and width, ``F`` features,
``D`` observation dimensions. ``q_BA`` is a batch of Q-value rows, one per action.

The dueling architecture (Wang et al., 2016, "Dueling Network Architectures for Deep
Reinforcement Learning") shares an encoder between a state-value stream ``V(s)`` and an
advantage stream ``A(s, a)`` and recombines them as

    Q(s, a) = V(s) + (A(s, a) - 1/|A| * sum_a' A(s, a'))

so that ``mean_a Q(s, a) == V(s)``: the mean-subtraction makes ``V`` and ``A`` identifiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

FRAME_STACK = 4
FRAME_SIZE = 84
NATURE_FEATURES = 512


def preprocess_frames(frames: torch.Tensor) -> torch.Tensor:
    """Turn uint8 frames in [0, 255] into float32 in [0, 1], the input :class:`DuelDQN` expects.

    The network itself applies no scaling, so the agent calls this once per batch, on the
    device, after sampling (a uint8 batch is 4x smaller to move than a float one).

    Args:
        frames: uint8 tensor of any shape, e.g. ``(B, 4, 84, 84)``.

    Returns:
        float32 tensor of the same shape, ``frames / 255``.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"preprocess_frames expects uint8 frames in [0, 255], got dtype {frames.dtype}")
    return frames.float().div_(255.0)


def _nature_side(size: int) -> int:
    """Output size of the Nature convolutions along one side of ``size`` pixels (84 -> 7)."""
    return ((size - 8) // 4 + 1 - 4) // 2 + 1 - 2


class NatureCNN(nn.Module):
    """The DQN "Nature" encoder (Mnih et al., 2015): three convolutions and a 512-unit layer.

    Shapes for an 84x84 input: ``(B, C, 84, 84) -> (B, 32, 20, 20) -> (B, 64, 9, 9)
    -> (B, 64, 7, 7) -> (B, 3136) -> (B, 512)``. Frames need not be square: ``frame_width``
    defaults to ``frame_size`` (the height); both must be at least 36 pixels.
    """

    MIN_SIZE = 36

    def __init__(
        self, in_channels: int = FRAME_STACK, frame_size: int = FRAME_SIZE, frame_width: int | None = None
    ) -> None:
        super().__init__()
        height, width = frame_size, frame_size if frame_width is None else frame_width
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),  # (B, 32, 20, 20) for 84x84
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),  # (B, 64, 9, 9)
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),  # (B, 64, 7, 7)
            nn.ReLU(),
            nn.Flatten(),  # (B, 3136)
        )
        if min(height, width) < self.MIN_SIZE:
            raise ValueError(f"NatureCNN needs frames of at least 36x36 pixels, got {height}x{width}")
        out_pixels = _nature_side(height) * _nature_side(width)
        self.fc = nn.Sequential(nn.Linear(64 * out_pixels, NATURE_FEATURES), nn.ReLU())  # (B, 512)
        self.out_features = NATURE_FEATURES

    def forward(self, obs_BCHW: torch.Tensor) -> torch.Tensor:
        """Encode float frames ``(B, C, H, W)`` into features ``(B, 512)``."""
        return self.fc(self.conv(obs_BCHW))


class MinAtarCNN(nn.Module):
    """The encoder of MinAtar's DQN (Young and Tian, 2019) for small grids such as its 10x10 images.

    One 3x3 convolution of 16 channels, stride 1, ReLU, then a 128-unit layer:
    ``(B, C, H, W) -> (B, 16, H - 2, W - 2) -> (B, 16 (H - 2) (W - 2)) -> (B, 128)``.
    """

    FEATURES = 128

    def __init__(self, in_channels: int, height: int, width: int) -> None:
        super().__init__()
        if min(height, width) < 3:
            raise ValueError(f"MinAtarCNN needs images of at least 3x3 pixels, got {height}x{width}")
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, stride=1),  # (B, 16, H - 2, W - 2)
            nn.ReLU(),
            nn.Flatten(),  # (B, 16 (H - 2) (W - 2))
        )
        self.fc = nn.Sequential(nn.Linear(16 * (height - 2) * (width - 2), self.FEATURES), nn.ReLU())  # (B, 128)
        self.out_features = self.FEATURES

    def forward(self, obs_BCHW: torch.Tensor) -> torch.Tensor:
        """Encode float images ``(B, C, H, W)`` into features ``(B, 128)``."""
        return self.fc(self.conv(obs_BCHW))


class MLP(nn.Module):
    """A ReLU multi-layer perceptron encoder for vector observations: ``(B, D) -> (B, F)``."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        if in_features < 1 or not hidden_sizes or any(h < 1 for h in hidden_sizes):
            raise ValueError(
                f"MLP needs in_features >= 1 and a non-empty list of positive hidden sizes, "
                f"got in_features={in_features}, hidden_sizes={list(hidden_sizes)}"
            )
        layers: list[nn.Module] = []
        size = in_features
        for hidden in hidden_sizes:
            layers += [nn.Linear(size, hidden), nn.ReLU()]
            size = hidden
        self.net = nn.Sequential(*layers)
        self.out_features = size

    def forward(self, obs_BD: torch.Tensor) -> torch.Tensor:
        """Encode observations ``(B, D)`` into features ``(B, F)``."""
        return self.net(obs_BD)


class DuelingHead(nn.Module):
    """Value and advantage streams recombined as ``Q = V + (A - mean_a A)``: ``(B, F) -> (B, A)``."""

    def __init__(self, in_features: int, n_actions: int) -> None:
        super().__init__()
        self.value = nn.Linear(in_features, 1)  # V(s): (B, 1)
        self.advantage = nn.Linear(in_features, n_actions)  # A(s, a): (B, A)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, A)`` from shared features ``(B, F)``."""
        v_B1 = self.value(features_BF)
        a_BA = self.advantage(features_BF)
        return v_B1 + (a_BA - a_BA.mean(dim=1, keepdim=True))


class QHead(nn.Module):
    """The plain DQN head, one linear layer: ``(B, F) -> (B, A)``."""

    def __init__(self, in_features: int, n_actions: int) -> None:
        super().__init__()
        self.q = nn.Linear(in_features, n_actions)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, A)`` from features ``(B, F)``."""
        return self.q(features_BF)


class QNetwork(nn.Module):
    """An encoder followed by a Q head: ``(B, *obs_shape) -> (B, A)``.

    It does no input checking, so it costs nothing extra on the acting path; the environment
    boundary (:func:`dueldqn.envs.make_env`) checks what comes in.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, A)`` for a float batch of observations."""
        return self.head(self.encoder(obs))


class DuelDQN(QNetwork):
    """The Dueling DQN network of the spec, for four stacked 84x84 frames and four actions.

    .. math::

        Q(s, a) = V(s) + \\Big(A(s, a) - \\frac{1}{|\\mathcal{A}|}\\sum_{a'} A(s, a')\\Big)

    Layers: conv 4->32 k8 s4, ReLU ``(B, 32, 20, 20)``; conv 32->64 k4 s2, ReLU ``(B, 64, 9, 9)``;
    conv 64->64 k3 s1, ReLU ``(B, 64, 7, 7)``; flatten ``(B, 3136)``; linear 3136->512, ReLU;
    value head 512->1 and advantage head 512->4. 1,686,693 parameters.

    ``forward(obs)`` takes float frames ``(B, 4, 84, 84)`` or one observation ``(4, 84, 84)``
    and returns ``q`` of shape ``(B, 4)`` or ``(4,)``. It applies no input scaling: turn uint8
    frames into floats in [0, 1] with :func:`preprocess_frames` first.
    """

    N_ACTIONS = 4
    OBS_SHAPE = (FRAME_STACK, FRAME_SIZE, FRAME_SIZE)

    def __init__(self) -> None:
        super().__init__(NatureCNN(FRAME_STACK, FRAME_SIZE), DuelingHead(NATURE_FEATURES, self.N_ACTIONS))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, 4)`` for ``obs`` of shape ``(B, 4, 84, 84)``, or ``(4,)`` for ``(4, 84, 84)``."""
        expected = "a float tensor of shape (B, 4, 84, 84) or (4, 84, 84)"
        if not isinstance(obs, torch.Tensor):
            raise TypeError(f"DuelDQN expects {expected}, got {type(obs).__name__}")
        if not obs.is_floating_point():
            hint = (
                "; convert uint8 frames with dueldqn.preprocess_frames(frames), which scales them to [0, 1]"
                if obs.dtype == torch.uint8
                else ""
            )
            raise TypeError(f"DuelDQN expects {expected}, got dtype {obs.dtype}{hint}")
        single = obs.dim() == 3
        if obs.dim() not in (3, 4) or tuple(obs.shape[-3:]) != self.OBS_SHAPE:
            raise ValueError(f"DuelDQN expects {expected}, got shape {tuple(obs.shape)}")
        q_BA = super().forward(obs.unsqueeze(0) if single else obs)
        return q_BA.squeeze(0) if single else q_BA


def build_q_network(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    dueling: bool = True,
    hidden_sizes: Sequence[int] = (64, 64),
) -> QNetwork:
    """Build a Q-network for a gymnasium observation and action space.

    A 1-D ``Box`` gets an :class:`MLP` encoder; a channels-first image ``(C, H, W)`` gets a
    :class:`NatureCNN` when ``min(H, W) >= 36`` (Atari after preprocessing) and a
    :class:`MinAtarCNN` for smaller grids. Other spaces are first encoded into one of these by
    :class:`dueldqn.spaces.ObservationEncoder`. The head is a :class:`DuelingHead` or, with
    ``dueling=False``, a plain :class:`QHead`. For ``(4, 84, 84)`` frames and four actions with
    ``dueling=True`` the result is exactly the spec's :class:`DuelDQN`.

    Raises:
        ValueError: for an action space that is not ``Discrete`` or an observation space that is
            neither a 1-D ``Box`` nor a ``(C, H, W)`` ``Box`` of at least 3x3 pixels.
    """
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(
            f"Q-learning needs a Discrete action space (one Q-value per action), got {action_space}; "
            "continuous control needs an actor-critic method such as SAC or TD3"
        )
    n_actions = int(action_space.n)
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"expected a Box observation space, got {observation_space}")
    shape = tuple(observation_space.shape)
    if len(shape) == 3:
        if dueling and shape == DuelDQN.OBS_SHAPE and n_actions == DuelDQN.N_ACTIONS:
            return DuelDQN()
        channels, height, width = shape
        if min(height, width) >= NatureCNN.MIN_SIZE:
            encoder: nn.Module = NatureCNN(channels, height, width)
        else:
            encoder = MinAtarCNN(channels, height, width)
    elif len(shape) == 1:
        encoder = MLP(shape[0], hidden_sizes)
    else:
        raise ValueError(f"expected observations of shape (D,) or images (C, H, W), got {shape}")
    features = int(encoder.out_features)  # type: ignore[arg-type]
    head = DuelingHead(features, n_actions) if dueling else QHead(features, n_actions)
    return QNetwork(encoder, head)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters in ``module``."""
    return int(sum(np.prod(p.shape) for p in module.parameters()))
