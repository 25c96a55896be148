"""Observation spaces: what a Q-network takes in, made from any observation space DQN is used on.

:class:`ObservationEncoder` turns observations of a gymnasium space into the input of a
Q-network, in numpy, a batch at a time:

- a 1-D ``Box`` of floats is used as it is (an :class:`~dueldqn.networks.MLP` input);
- a 3-D ``Box`` is an image, kept in its dtype (``uint8`` stays ``uint8``): channels-first
  ``(C, H, W)`` as it is, channels-last ``(H, W, C)`` transposed to ``(C, H, W)``. The layout is
  told as Stable-Baselines3's ``is_image_space_channels_first`` tells it: an image is
  channels-last when its last dimension is smaller than its first and not larger than its
  second (``(210, 160, 3)``, MinAtar's ``(10, 10, 7)``), else channels-first (``(4, 84, 84)``;
  a cube such as ``(10, 10, 10)`` too);
- any other ``Box`` (``()``, ``(H, W)``, 4-D and up, and a 1-D ``Box`` of integers) is flattened, its
  values as float32 when they are integers: only images are scaled from ``uint8`` to [0, 1], as in
  Stable-Baselines3's ``preprocess_obs`` (a 1-D ``uint8`` vector, such as Atari's RAM, is not);
- ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` and ``Tuple`` / ``Dict`` of these and of
  Boxes become one float32 vector, as Stable-Baselines3 and Tianshou encode them and as
  ``gymnasium.spaces.flatten`` does: a one-hot vector per ``Discrete`` (``obs - start`` is the
  hot index), a one-hot vector per component of a ``MultiDiscrete``, the bits of a
  ``MultiBinary`` and the flattened values of a ``Box`` as floats, concatenated in the space's
  order (a ``Dict``'s order: gymnasium sorts the keys of a plain ``dict``). Images inside a
  ``Tuple`` / ``Dict`` are refused: they would need one encoder per input.

Training envs apply the encoder through :class:`EncodeObservation`, so the replay memory and the
networks only ever see the encoded ``Box``; :class:`dueldqn.agent.Agent` applies it to the raw
observations a user passes. :func:`space_to_json` / :func:`space_from_json` keep the raw space in a
saved model.

Shape suffixes as in :mod:`dueldqn.networks`: ``B`` batch, ``D`` encoded features, ``K``
components of a ``MultiDiscrete`` or ``MultiBinary``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, or a Tuple / Dict of these (without images)"


def is_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a 3-D image shape is ``(H, W, C)`` rather than ``(C, H, W)``: its last dimension is the smallest.

    ``(10, 10, 3)`` and ``(210, 160, 3)`` are channels-last; ``(3, 10, 10)``, ``(4, 84, 84)`` and a
    cube ``(10, 10, 10)`` channels-first (ties go to channels-first, as in Stable-Baselines3).
    """
    return len(shape) == 3 and shape[2] < shape[0] and shape[2] <= shape[1]


@dataclass(frozen=True)
class _Part:
    """One leaf of a (possibly nested) space and where its encoding goes in the output vector."""

    path: tuple[str | int, ...]  # keys / indices from the root space down to the leaf
    space: gym.Space[Any]
    offset: int  # first output column
    size: int  # output columns
    # Discrete / MultiDiscrete: (first column of each component's one-hot block, the value that is its column 0)
    one_hot: tuple[np.ndarray, np.ndarray] | None = None


def _leaves(space: gym.Space[Any], path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], gym.Space[Any]]]:
    if isinstance(space, spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in _leaves(sub, (*path, key))]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, sub in enumerate(space.spaces) for leaf in _leaves(sub, (*path, i))]
    return [(path, space)]


def _vector_part(path: tuple[str | int, ...], space: gym.Space[Any], offset: int) -> _Part:
    """Where a leaf goes in the float vector; ``ValueError`` for a leaf that cannot go there."""
    where = "".join(f"[{key!r}]" for key in path) or "the observation space"
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        return _Part(path, space, offset, n, (np.array([offset]), np.array([int(space.start)])))
    if isinstance(space, spaces.MultiDiscrete):
        nvec_K = np.asarray(space.nvec, dtype=np.int64).ravel()
        hot_offsets_K = offset + np.concatenate([[0], np.cumsum(nvec_K)[:-1]])
        start_K = np.asarray(space.start, dtype=np.int64).ravel()
        return _Part(path, space, offset, int(nvec_K.sum()), (hot_offsets_K, start_K))
    if isinstance(space, spaces.MultiBinary):
        return _Part(path, space, offset, int(np.prod(space.shape)))
    if isinstance(space, spaces.Box):
        if len(space.shape) >= 3:
            raise ValueError(
                f"{where} is an image Box {space.shape} inside a Tuple / Dict space; dueldqn encodes images only "
                "as the whole observation (wrap the env to keep the image alone, or flatten it)"
            )
        return _Part(path, space, offset, int(np.prod(space.shape)))
    raise ValueError(f"{where} is a {type(space).__name__} space; dueldqn supports {SUPPORTED}")


def _get(obs: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        obs = obs[key]
    return obs


class ObservationEncoder:
    """Encode observations of ``space`` as a Q-network's input: a ``Box`` (see the module docstring).

    Args:
        space: the env's observation space.

    Attributes:
        space: the raw observation space.
        encoded_space: the ``Box`` that :meth:`encode` maps into: ``(D,)`` float32 for discrete and
            composite spaces, ``(C, H, W)`` for images, the space itself for a 1-D ``Box``.
        kind: ``"identity"``, ``"transpose"`` (HWC image to CHW), ``"flatten"`` (other ``Box``) or
            ``"vector"`` (one-hot and concatenation into float32).

    Raises:
        ValueError: for a space it cannot encode (``Text``, ``Graph``, ``Sequence``, an image in a
            ``Dict``, an empty space), with a message that says what is supported.
    """

    def __init__(self, space: gym.Space[Any]) -> None:
        self.space = space
        self._parts: list[_Part] = []
        if isinstance(space, spaces.Box):
            shape = tuple(space.shape)
            floating = np.issubdtype(space.dtype, np.floating)
            if (len(shape) == 1 and floating) or (len(shape) == 3 and not is_channels_last(shape)):
                self.kind, self.encoded_space = "identity", space
            elif len(shape) == 3:
                self.kind = "transpose"
                self.encoded_space = spaces.Box(
                    np.transpose(space.low, (2, 0, 1)), np.transpose(space.high, (2, 0, 1)), dtype=space.dtype
                )
            else:  # only images are scaled from uint8 to [0, 1]: other integer Boxes become their values as floats
                self.kind = "flatten"
                dtype = space.dtype if floating else np.float32
                low, high = space.low.reshape(-1).astype(dtype), space.high.reshape(-1).astype(dtype)
                self.encoded_space = spaces.Box(low, high, dtype=dtype)
            if int(np.prod(shape)) == 0:
                raise ValueError(f"the observation space {space} is empty; a Q-network needs at least one input")
            return
        self.kind = "vector"
        offset = 0
        for path, leaf in _leaves(space, ()):
            part = _vector_part(path, leaf, offset)
            self._parts.append(part)
            offset += part.size
        if offset == 0:
            raise ValueError(f"the observation space {space} is empty; a Q-network needs at least one input")
        low_D, high_D = np.zeros(offset, np.float32), np.ones(offset, np.float32)
        for part in self._parts:
            if isinstance(part.space, spaces.Box):
                low_D[part.offset : part.offset + part.size] = part.space.low.reshape(-1)
                high_D[part.offset : part.offset + part.size] = part.space.high.reshape(-1)
        self.encoded_space = spaces.Box(low_D, high_D, dtype=np.float32)

    @property
    def is_identity(self) -> bool:
        """Whether observations go to the network as they are (1-D ``Box``, channels-first image)."""
        return self.kind == "identity"

    def is_single(self, obs: Any) -> bool:
        """Whether ``obs`` is one observation of the space rather than a batch of them.

        A batch is what a gymnasium vector env returns: arrays with a leading batch dimension
        (for ``Dict`` / ``Tuple`` spaces, a dict / tuple of such arrays).
        """
        if self.kind != "vector":
            return np.shape(obs) == tuple(self.space.shape)  # type: ignore[arg-type]
        first = self._parts[0]
        return np.shape(_get(obs, first.path)) == tuple(first.space.shape)  # type: ignore[arg-type]

    def encode(self, obs_batch: Any) -> np.ndarray:
        """Encode a batch of observations: ``(B, *encoded_space.shape)``, vectorised over ``B``.

        ``obs_batch`` is batched as a gymnasium vector env batches it: an array ``(B, *shape)``
        (``(B,)`` for ``Discrete``), or a dict / tuple of such arrays for ``Dict`` / ``Tuple``.
        """
        if self.kind != "vector":
            obs_B = np.asarray(obs_batch)
            self._check(obs_B, tuple(self.space.shape), ())  # type: ignore[arg-type]
            if self.kind == "transpose":  # (B, H, W, C) -> (B, C, H, W)
                return np.ascontiguousarray(obs_B.transpose(0, 3, 1, 2))
            if self.kind == "flatten":
                return obs_B.reshape(len(obs_B), -1).astype(self.encoded_space.dtype, copy=False)
            return obs_B
        leaves = [np.asarray(_get(obs_batch, part.path)) for part in self._parts]
        batch = len(leaves[0]) if leaves[0].ndim else 0
        obs_BD = np.zeros((batch, self.encoded_space.shape[0]), dtype=np.float32)
        rows_B1 = np.arange(batch)[:, None]
        for part, leaf in zip(self._parts, leaves, strict=True):
            self._check(leaf, tuple(part.space.shape), part.path, batch)  # type: ignore[arg-type]
            leaf_BK = leaf.reshape(batch, -1)
            if part.one_hot is not None:  # Discrete, MultiDiscrete: one 1 per component
                hot_offsets_K, start_K = part.one_hot
                index_BK = leaf_BK.astype(np.int64) - start_K + hot_offsets_K
                obs_BD[rows_B1, index_BK] = 1.0
            else:  # MultiBinary, Box: the values as floats
                obs_BD[:, part.offset : part.offset + part.size] = leaf_BK
        return obs_BD

    def encode_one(self, obs: Any) -> np.ndarray:
        """Encode one observation: ``encoded_space.shape``."""
        return self.encode(_add_batch_axis(obs))[0]

    def _check(self, leaf: np.ndarray, shape: tuple[int, ...], path: tuple[str | int, ...], batch: int = -1) -> None:
        if leaf.shape[1:] != shape or leaf.ndim == 0 or (batch >= 0 and len(leaf) != batch):
            where = "".join(f"[{key!r}]" for key in path)
            batch_shape = "(B, " + ", ".join(map(str, shape)) + ")" if shape else "(B,)"
            raise ValueError(
                f"expected an observation{where} of shape {shape} or a batch {batch_shape} of them "
                f"(observation space {self.space}), got shape {leaf.shape}"
            )


def _add_batch_axis(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {key: _add_batch_axis(value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_add_batch_axis(value) for value in obs)
    return np.asarray(obs)[None]


class EncodeObservation(gym.ObservationWrapper[np.ndarray, Any, Any]):
    """A wrapper whose observations are ``encoder.encode_one`` of the env's: its space is ``encoded_space``.

    Its only attribute besides gymnasium's is the encoder (not plain data), so an exact-resume
    snapshot of the env (:func:`dueldqn.envs.vector_env_state`) skips it: it holds no progress.
    """

    def __init__(self, env: gym.Env[Any, Any], encoder: ObservationEncoder) -> None:
        super().__init__(env)
        self.encoder = encoder
        self.observation_space = encoder.encoded_space

    def observation(self, observation: Any) -> np.ndarray:
        """The encoded observation."""
        return self.encoder.encode_one(observation)


def space_to_json(space: gym.Space[Any]) -> dict[str, Any]:
    """A JSON-ready description of a space that :func:`space_from_json` turns back into an equal space.

    A ``Box`` whose bounds are the same everywhere keeps them as one number.
    """
    if isinstance(space, spaces.Box):

        def bound(values: np.ndarray) -> Any:
            flat = values.reshape(-1)
            return flat[0].item() if flat.size and (flat == flat[0]).all() else values.tolist()

        low, high = bound(space.low), bound(space.high)
        return {"type": "Box", "low": low, "high": high, "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        nvec, start = space.nvec.tolist(), space.start.tolist()
        return {"type": "MultiDiscrete", "nvec": nvec, "start": start, "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[key, space_to_json(sub)] for key, sub in space.spaces.items()]}
    raise ValueError(f"cannot describe a {type(space).__name__} space; dueldqn supports {SUPPORTED}")


def space_from_json(value: dict[str, Any]) -> gym.Space[Any]:
    """The space described by :func:`space_to_json`."""
    kind = value.get("type")
    if kind == "Box":
        shape, dtype = tuple(value["shape"]), np.dtype(value["dtype"])
        low, high = (np.broadcast_to(np.array(value[k], dtype), shape) for k in ("low", "high"))
        return spaces.Box(low, high, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(value["n"]), start=int(value["start"]))
    if kind == "MultiDiscrete":
        nvec, start = np.array(value["nvec"]), np.array(value["start"])
        return spaces.MultiDiscrete(nvec, dtype=np.dtype(value["dtype"]), start=start)
    if kind == "MultiBinary":
        return spaces.MultiBinary(value["n"])
    if kind == "Tuple":
        return spaces.Tuple([space_from_json(sub) for sub in value["spaces"]])
    if kind == "Dict":
        # A list of pairs, not a dict: gymnasium would sort a dict's keys, not an ordered list of pairs.
        return spaces.Dict([(key, space_from_json(sub)) for key, sub in value["spaces"]])
    raise ValueError(f"not a space description written by dueldqn: {value!r}")
