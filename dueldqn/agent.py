"""A trained agent: acts with its Q-network, loads from a run directory.

``Agent.predict`` follows Stable-Baselines3's convention (``predict(obs, state=None,
episode_start=None, deterministic=True) -> (actions, state)``), so evaluation code written for
SB3 works unchanged. Like SB3's, it takes the env's raw observations (an ``int`` for
FrozenLake, ``(H, W, C)`` images) and encodes them with :class:`dueldqn.spaces.ObservationEncoder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dueldqn.checkpoint import load_model_spec
from dueldqn.config import Config
from dueldqn.exploration import kth_legal
from dueldqn.files import MODEL_FILE
from dueldqn.networks import QNetwork, build_q_network
from dueldqn.numpy_mlp import numpy_greedy
from dueldqn.spaces import ObservationEncoder, space_from_json, space_to_json
from dueldqn.tensors import as_network_input


def network_spec(
    observation_space: gym.spaces.Box,
    n_actions: int,
    dueling: bool,
    hidden_sizes: tuple[int, ...],
    raw_observation_space: gym.Space | None = None,
    head: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What :meth:`Agent.load` needs to rebuild a network: spaces and architecture, JSON-ready.

    ``observation_space`` is the network's input (``obs_shape``, ``obs_dtype``);
    ``raw_observation_space`` (``obs_space``, default the same) the env's, before
    :mod:`dueldqn.spaces` encoded it. Specs written before ``obs_space`` existed still load:
    their raw space is the network's input. ``head``: the entries of :func:`head_spec` (a
    distributional or noisy head); a plain head adds none, so earlier specs stay equal.
    """
    raw = observation_space if raw_observation_space is None else raw_observation_space
    return {
        "obs_shape": list(observation_space.shape),
        "obs_dtype": str(observation_space.dtype),
        "n_actions": int(n_actions),
        "dueling": bool(dueling),
        "hidden_sizes": list(hidden_sizes),
        "obs_space": space_to_json(raw),
        **(head or {}),
    }


def head_spec(config: Config) -> dict[str, Any]:
    """The spec entries of a distributional (``atoms``, ``v_min``, ``v_max``) or noisy (``sigma0``) head."""
    spec: dict[str, Any] = {}
    if config.distributional:
        spec["distributional"] = {"atoms": config.atoms, "v_min": config.v_min, "v_max": config.v_max}
    if config.noisy:
        spec["noisy"] = {"sigma0": config.noisy_sigma0}
    return spec


def head_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`~dueldqn.networks.build_q_network`'s head arguments for a spec (or :func:`head_spec`)."""
    kwargs: dict[str, Any] = {}
    if "distributional" in spec:
        dist = spec["distributional"]
        kwargs |= {"atoms": int(dist["atoms"]), "v_min": float(dist["v_min"]), "v_max": float(dist["v_max"])}
    if "noisy" in spec:
        kwargs["noisy_sigma0"] = float(spec["noisy"]["sigma0"])
    return kwargs


NOISE_SEED = 7  # the noise generators' stream, apart from the other generators of the seed


def noise_generator(config: Config, device: torch.device, *stream: int) -> torch.Generator | None:
    """A noisy network's noise generator (``None`` without ``config.noisy``), seeded by (seed, 7, ``stream``)."""
    if not config.noisy:
        return None
    seed = int(np.random.SeedSequence([config.seed, NOISE_SEED, *stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(seed)


def network_kwargs(config: Config) -> dict[str, Any]:
    """Every :func:`~dueldqn.networks.build_q_network` argument that ``config`` sets, for all executors."""
    return {"dueling": config.dueling, "hidden_sizes": config.hidden_sizes, **head_kwargs(head_spec(config))}


def same_network(saved: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether a saved :func:`network_spec` describes ``spec``'s network (an old one without ``obs_space`` may)."""
    return {"obs_space": spec.get("obs_space"), **saved} == spec


class Agent:
    """A Q-network with the epsilon-greedy policy around it.

    Args:
        q_net: maps a float batch of encoded observations ``(B, *obs_shape)`` to Q-values ``(B, A)``.
        observation_space: the env's raw observation space: it tells one observation from a
            batch, and :class:`~dueldqn.spaces.ObservationEncoder` of it encodes them.
        n_actions: number of discrete actions.
        epsilon: exploration rate used when ``deterministic=False``.
        seed: seed of the exploration generator.
    """

    def __init__(
        self,
        q_net: torch.nn.Module,
        observation_space: gym.Space,
        n_actions: int,
        *,
        epsilon: float = 0.05,
        seed: int | None = None,
    ) -> None:
        self.q_net = q_net
        self.observation_space = observation_space
        self.encoder = ObservationEncoder(observation_space)
        self.n_actions = n_actions
        self.epsilon = epsilon
        self.device = next(q_net.parameters()).device
        self.rng = np.random.default_rng(seed)
        # Greedy actions of a CPU MLP through numpy (views of the weights): evaluating CartPole's
        # 10,000 greedy steps takes 0.2 s instead of 1.2 s of torch's per-call overhead.
        self._numpy_mlp_greedy = numpy_greedy(q_net)

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``(B, A)`` for a batch of encoded observations ``(B, *obs_shape)`` (the network's input)."""
        return self.q_net(as_network_input(obs, self.device)).cpu().numpy()

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Actions for one raw observation (returns shape ``()``) or a batch (returns ``(B,)``).

        ``observation`` is what the env returns (a batch as a vector env batches it); it is
        encoded as in training. Greedy when ``deterministic``; otherwise epsilon-greedy with
        ``self.epsilon``. ``action_mask`` (``(A,)`` or ``(B, A)``, bools or 0/1, True where legal;
        sb3-contrib's ``MaskablePPO.predict`` argument): both the greedy and the random action are
        legal ones. ``state`` and ``episode_start`` exist for Stable-Baselines3 compatibility (no
        recurrent state).
        """
        single = self.encoder.is_single(observation)
        batch = self.encoder.encode_one(observation)[None] if single else self.encoder.encode(observation)
        mask_BA = None
        if action_mask is not None:
            from dueldqn.envs.masks import check_legal, check_mask

            raw = np.asarray(action_mask)
            mask_BA = check_mask(raw[None] if single else raw, self.n_actions, len(batch), where="Agent.predict")
            check_legal(mask_BA, None, where="Agent.predict")
        greedy = self._numpy_mlp_greedy
        if greedy is not None:
            actions_B = greedy(batch, mask_BA)
        else:
            q_BA = self.q_values(batch)
            actions_B = (q_BA if mask_BA is None else np.where(mask_BA, q_BA, -np.inf)).argmax(axis=1)
        if not deterministic:
            explore_B = self.rng.random(len(actions_B)) < self.epsilon
            if mask_BA is None:
                random_B = self.rng.integers(0, self.n_actions, len(actions_B))
            else:  # uniform over each row's legal actions
                k_B = (self.rng.random(len(actions_B)) * mask_BA.sum(axis=1)).astype(np.int64)
                random_B = kth_legal(mask_BA, k_B)
            actions_B = np.where(explore_B, random_B, actions_B)
        return (actions_B[0] if single else actions_B), None

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", epsilon: float = 0.05, seed: int | None = None) -> Agent:
        """Load an agent from a run directory (its ``model.safetensors``) or the weights file itself."""
        path = Path(path)
        weights = path / MODEL_FILE if path.is_dir() else path
        state, spec = load_model_spec(weights)
        q_net = build_from_spec(spec)
        try:
            q_net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{weights} does not match the network its spec describes: {err}") from err
        q_net.to(device).eval()
        if "obs_space" in spec:
            space = space_from_json(spec["obs_space"])
        else:  # written before the raw space was saved: the network's input is the env's observation
            space = gym.spaces.Box(-np.inf, np.inf, tuple(spec["obs_shape"]), dtype=np.dtype(spec["obs_dtype"]))
        return cls(q_net, space, int(spec["n_actions"]), epsilon=epsilon, seed=seed)


def build_from_spec(spec: dict[str, Any]) -> QNetwork:
    """Rebuild an (untrained) Q-network from :func:`network_spec`."""
    dtype = np.dtype(spec["obs_dtype"])
    low, high = (0, 255) if dtype == np.uint8 else (-np.inf, np.inf)
    space = gym.spaces.Box(low=low, high=high, shape=tuple(spec["obs_shape"]), dtype=dtype)
    return build_q_network(
        space,
        gym.spaces.Discrete(int(spec["n_actions"])),
        dueling=bool(spec["dueling"]),
        hidden_sizes=tuple(spec["hidden_sizes"]),
        **head_kwargs(spec),
    )
