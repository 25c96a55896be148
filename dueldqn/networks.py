"""Q-networks: the spec's :class:`DuelDQN` and the parts it is built from.

Shape suffixes (used across the package): ``B`` batch, ``N`` parallel envs, ``A`` actions,
``C`` channels (stacked frames), ``H`` / ``W`` frame height and width, ``F`` features,
``D`` observation dimensions. ``q_BA`` is a batch of Q-value rows, one per action.

The dueling architecture (Wang et al., 2016, "Dueling Network Architectures for Deep
Reinforcement Learning") shares an encoder between a state-value stream ``V(s)`` and an
advantage stream ``A(s, a)`` and recombines them as

    Q(s, a) = V(s) + (A(s, a) - 1/|A| * sum_a' A(s, a'))

so that ``mean_a Q(s, a) == V(s)``: the mean-subtraction makes ``V`` and ``A`` identifiable.

Rainbow's parts (Hessel et al., 2018) are built from the same encoders: a distributional (C51) head
whose ``Z`` atoms per action give ``p(s, a)`` over a fixed support (:class:`DistributionalQNetwork`,
``Z`` adds to the shape suffixes), and factorised Gaussian :class:`NoisyLinear` layers in the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dueldqn.atari_protocol import FRAME_SIZE, FRAME_STACK

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


class NoisyLinear(nn.Module):
    r"""A linear layer with factorised Gaussian noise on its weights (Fortunato et al., 2018, "Noisy Networks").

    .. math::

        y = (\mu^w + \sigma^w \odot f(\epsilon_{out}) f(\epsilon_{in})^T) x + \mu^b + \sigma^b \odot f(\epsilon_{out}),
        \quad f(x) = \mathrm{sgn}(x) \sqrt{|x|}

    ``mu`` starts uniform in ``+-1/sqrt(I)`` and ``sigma`` at ``sigma0 / sqrt(I)`` (the paper's factorised
    initialisation, ``sigma0 = 0.5``). The noise ``f(eps_in) (I,)`` and ``f(eps_out) (O,)`` are buffers (so a
    checkpoint holds them) that change only when :meth:`reset_noise` draws new ones from a generator the
    caller owns. In eval mode (``module.eval()``) the layer uses the mean weights ``mu`` alone.
    Shapes: ``(B, I) -> (B, O)``.
    """

    noise_in_I: torch.Tensor
    noise_out_O: torch.Tensor

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("noise_in_I", torch.zeros(in_features))  # f(eps_in)
        self.register_buffer("noise_out_O", torch.zeros(out_features))  # f(eps_out)

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator) -> None:
        """Draw new ``f(eps_in)`` and ``f(eps_out)`` from ``generator`` (on the generator's device)."""
        for noise in (self.noise_in_I, self.noise_out_O):
            eps = torch.randn(noise.shape, generator=generator, device=generator.device)
            noise.copy_(eps.sign() * eps.abs().sqrt())

    def forward(self, x_BI: torch.Tensor) -> torch.Tensor:
        """``(B, I) -> (B, O)``: noisy weights in training mode, the means ``mu`` in eval mode."""
        if not self.training:
            return F.linear(x_BI, self.weight_mu, self.bias_mu)
        weight_OI = self.weight_mu + self.weight_sigma * torch.outer(self.noise_out_O, self.noise_in_I)
        return F.linear(x_BI, weight_OI, self.bias_mu + self.bias_sigma * self.noise_out_O)


def linear_layer(noisy_sigma0: float | None) -> Callable[[int, int], nn.Module]:
    """``nn.Linear``, or with ``noisy_sigma0`` a :class:`NoisyLinear` of that ``sigma0``."""
    if noisy_sigma0 is None:
        return nn.Linear
    return lambda i, o: NoisyLinear(i, o, noisy_sigma0)


def reset_noise(module: nn.Module, generator: torch.Generator) -> None:
    """New noise for every :class:`NoisyLinear` in ``module`` (none: nothing happens)."""
    for layer in module.modules():
        if isinstance(layer, NoisyLinear):
            layer.reset_noise(generator)


class DuelingHead(nn.Module):
    """Value and advantage streams recombined as ``Q = V + (A - mean_a A)``: ``(B, F) -> (B, A)``.

    ``noisy_sigma0``: both streams are :class:`NoisyLinear` layers of that ``sigma0``.
    """

    def __init__(self, in_features: int, n_actions: int, noisy_sigma0: float | None = None) -> None:
        super().__init__()
        linear = linear_layer(noisy_sigma0)
        self.value = linear(in_features, 1)  # V(s): (B, 1)
        self.advantage = linear(in_features, n_actions)  # A(s, a): (B, A)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, A)`` from shared features ``(B, F)``."""
        v_B1 = self.value(features_BF)
        a_BA = self.advantage(features_BF)
        return v_B1 + (a_BA - a_BA.mean(dim=1, keepdim=True))


class QHead(nn.Module):
    """The plain DQN head, one linear layer (noisy with ``noisy_sigma0``): ``(B, F) -> (B, A)``."""

    def __init__(self, in_features: int, n_actions: int, noisy_sigma0: float | None = None) -> None:
        super().__init__()
        self.q = linear_layer(noisy_sigma0)(in_features, n_actions)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, A)`` from features ``(B, F)``."""
        return self.q(features_BF)


class CategoricalDuelingHead(nn.Module):
    """Rainbow's dueling distributional head: logits ``(B, F) -> (B, A, Z)``.

    ``logits(s, a) = v(s) + (a(s, a) - mean_a' a(s, a'))`` atom by atom, from a value stream of ``Z`` atoms and
    an advantage stream of ``A x Z`` (Hessel et al., 2018, eq. 4); a softmax over the atoms of each action
    then gives ``p(s, a)``.
    """

    def __init__(self, in_features: int, n_actions: int, atoms: int, noisy_sigma0: float | None = None) -> None:
        super().__init__()
        linear = linear_layer(noisy_sigma0)
        self.n_actions, self.atoms = n_actions, atoms
        self.value = linear(in_features, atoms)  # (B, Z)
        self.advantage = linear(in_features, n_actions * atoms)  # (B, A Z)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, A, Z)`` from shared features ``(B, F)``."""
        v_B1Z = self.value(features_BF).view(-1, 1, self.atoms)
        a_BAZ = self.advantage(features_BF).view(-1, self.n_actions, self.atoms)
        return v_B1Z + (a_BAZ - a_BAZ.mean(dim=1, keepdim=True))


class CategoricalHead(nn.Module):
    """The plain distributional head of C51, one linear layer: logits ``(B, F) -> (B, A, Z)``."""

    def __init__(self, in_features: int, n_actions: int, atoms: int, noisy_sigma0: float | None = None) -> None:
        super().__init__()
        self.n_actions, self.atoms = n_actions, atoms
        self.q = linear_layer(noisy_sigma0)(in_features, n_actions * atoms)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, A, Z)`` from features ``(B, F)``."""
        return self.q(features_BF).view(-1, self.n_actions, self.atoms)


class QNetwork(nn.Module):
    """An encoder followed by a Q head: ``(B, *obs_shape) -> (B, A)``.

    It does no input checking, so it costs nothing extra on the acting path; the environment
    boundary (:func:`dueldqn.envs.check_spaces`) checks what comes in.
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


class DistributionalQNetwork(QNetwork):
    """An encoder and a categorical head over the fixed support ``z_j = v_min + j (v_max - v_min) / (Z - 1)``.

    :meth:`log_probs` gives ``log p(s, a)`` ``(B, A, Z)`` (the learner's cross-entropy needs it);
    ``forward`` gives the expected Q-values ``Q(s, a) = sum_j z_j p_j(s, a)`` ``(B, A)``, so acting,
    ``Agent.predict`` and evaluation pick actions by expected Q as for any Q-network (Bellemare et al., 2017).
    """

    support_Z: torch.Tensor

    def __init__(self, encoder: nn.Module, head: nn.Module, v_min: float, v_max: float, atoms: int) -> None:
        super().__init__(encoder, head)
        self.register_buffer("support_Z", torch.linspace(v_min, v_max, atoms))

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """``log p(s, a)`` over the atoms: ``(B, A, Z)`` for a float batch of observations."""
        return F.log_softmax(self.head(self.encoder(obs)), dim=2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Expected Q-values ``(B, A)`` for a float batch of observations."""
        return (self.log_probs(obs).exp() * self.support_Z).sum(dim=2)


def build_q_network(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    dueling: bool = True,
    hidden_sizes: Sequence[int] = (64, 64),
    atoms: int = 0,
    v_min: float = -10.0,
    v_max: float = 10.0,
    noisy_sigma0: float | None = None,
) -> QNetwork:
    """Build a Q-network for a gymnasium observation and action space.

    A 1-D ``Box`` gets an :class:`MLP` encoder; a channels-first image ``(C, H, W)`` gets a
    :class:`NatureCNN` when ``min(H, W) >= 36`` (Atari after preprocessing) and a
    :class:`MinAtarCNN` for smaller grids. Other spaces are first encoded into one of these by
    :class:`dueldqn.spaces.ObservationEncoder`. The head is a :class:`DuelingHead` or, with
    ``dueling=False``, a plain :class:`QHead`. For ``(4, 84, 84)`` frames and four actions with
    ``dueling=True`` the result is exactly the spec's :class:`DuelDQN`.

    ``atoms > 0`` builds a :class:`DistributionalQNetwork` over ``atoms`` points of ``[v_min, v_max]``
    with a :class:`CategoricalDuelingHead` (or :class:`CategoricalHead`); ``noisy_sigma0`` makes the
    head's layers :class:`NoisyLinear` of that ``sigma0``. Either gives another class than ``DuelDQN``.

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
        plain = atoms == 0 and noisy_sigma0 is None
        if plain and dueling and shape == DuelDQN.OBS_SHAPE and n_actions == DuelDQN.N_ACTIONS:
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
    if atoms:
        head_class = CategoricalDuelingHead if dueling else CategoricalHead
        head = head_class(features, n_actions, atoms, noisy_sigma0)
        return DistributionalQNetwork(encoder, head, v_min, v_max, atoms)
    q_head = DuelingHead(features, n_actions, noisy_sigma0) if dueling else QHead(features, n_actions, noisy_sigma0)
    return QNetwork(encoder, q_head)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters in ``module``."""
    return int(sum(np.prod(p.shape) for p in module.parameters()))
