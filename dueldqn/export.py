"""Export a trained Q-network for deployment: ONNX, with the input preprocessing inside the graph.

``dueldqn export RUN --format onnx`` writes ``RUN/model.onnx`` and ``RUN/model.onnx.json``. The graph
takes the env's raw observations, batched, and does what :meth:`dueldqn.agent.Agent.predict` does
before the network (:class:`dueldqn.spaces.ObservationEncoder` and :func:`dueldqn.tensors.as_network_input`):

- a ``Box`` image channels-last ``(B, H, W, C)`` is transposed to ``(B, C, H, W)``;
- ``uint8`` images are scaled to [0, 1] (``x / 255``); other values become float32 as they are
  (a 1-D ``uint8`` vector such as Atari's RAM is not scaled, as in training);
- other ``Box`` shapes are flattened to ``(B, D)``;
- a ``Discrete`` observation ``(B,)`` becomes a one-hot row (``obs - start`` is the hot column), a
  ``MultiDiscrete`` one one-hot block per component, a ``MultiBinary`` its bits as floats;
- ``Tuple`` / ``Dict`` spaces take one graph input per leaf (``obs.0``, ``obs.position``), encoded as
  above and concatenated in the space's order.

Its outputs are ``q_values`` ``(B, A)`` float32 and ``action`` ``(B,)`` int64, the greedy action
(the first of equal maxima, as ``numpy.argmax``). The batch dimension is dynamic. The graph does not
check values: a ``Discrete`` value outside the space gives an all-zero one-hot row where the numpy
encoder would raise.

The JSON beside the model says the observation space and its encoding, each input's name, shape and
dtype, the outputs, the action count, the ONNX opset, the versions that wrote it and the SHA-256 of
the weights it came from. It is strict JSON: infinite bounds are the strings ``"inf"`` / ``"-inf"``.
Both files are written to temporary names and renamed. Nothing here executes the exported file; the
tests run it with onnxruntime.

ONNX needs the optional extra ``dueldqn[export]`` (onnx, and onnxscript for torch's ``torch.export``
based exporter); the rest of the package never imports it. TorchScript is not offered: ``torch.jit``
is deprecated in torch 2.13 in favour of ``torch.export``, which is what the ONNX exporter uses.

Shape suffixes as in :mod:`dueldqn.networks`: ``B`` batch, ``A`` actions, ``D`` encoded features,
``K`` components of a ``MultiDiscrete`` (1 for a ``Discrete``), ``M`` columns of one one-hot block.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dueldqn.files import MODEL_FILE, atomic_write, atomic_write_text
from dueldqn.spaces import ObservationEncoder, space_to_json
from dueldqn.versions import installed_version

FORMATS = ("onnx",)
OPSET = 18  # supported by every onnxruntime since 1.14 (2023), onnxruntime-web included
INPUT_PREFIX = "obs"
OUTPUT_NAMES = ("q_values", "action")


def q_values_of(q_net: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """The Q-values ``(B, A)`` that the output of ``q_net``'s forward pass stands for.

    Every network of dueldqn returns Q-values ``(B, A)`` and they pass through: a distributional network
    (C51, :class:`~dueldqn.networks.DistributionalQNetwork`) computes its expected Q-values
    ``Q(s, a) = sum_j z_j p_j(s, a)`` in its own forward pass, so the exported graph holds that expectation.
    A network whose output is anything else (probabilities ``(B, A, Z)``, say) is the case to add here.

    Raises:
        ValueError: for an output that is not ``(B, A)``, naming the shape.
    """
    if output.dim() != 2:
        raise ValueError(
            f"export expects a Q-network whose forward pass returns Q-values (B, A); {type(q_net).__name__} "
            f"returned shape {tuple(output.shape)} (a distributional head needs its expected Q in q_values_of)"
        )
    return output


@dataclass(frozen=True)
class GraphInput:
    """One input of the exported graph: a leaf of the observation space and how the graph encodes it."""

    name: str  # "obs", or "obs.<key>" / "obs.<index>" for a leaf of a Dict / Tuple space
    path: tuple[str | int, ...]  # keys / indices from the root space down to the leaf
    shape: tuple[int, ...]  # one observation's shape; the graph takes (B, *shape)
    dtype: np.dtype[Any]  # the dtype the env returns and the graph takes
    encoding: str  # how the graph encodes it (see module docstring)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description: the shape with ``"batch"`` first."""
        return {
            "name": self.name,
            "path": list(self.path),
            "shape": ["batch", *self.shape],
            "dtype": str(self.dtype),
            "encoding": self.encoding,
        }


def _name(path: tuple[str | int, ...]) -> str:
    return ".".join([INPUT_PREFIX, *map(str, path)])


def _float_of(dtype: np.dtype[Any], scaled: bool) -> str:
    if scaled:
        return "uint8 scaled to [0, 1] (x / 255)"
    return "float32" if dtype == np.float32 else f"{dtype} as float32"


class _OneHot(nn.Module):
    """One-hot blocks of a ``Discrete`` / ``MultiDiscrete`` leaf: ``(B, *shape) -> (B, M)``.

    Component ``k`` with value ``v`` sets column ``offset_k + v - start_k``; the blocks do not overlap, so
    the sum over components of the ``(B, K, M)`` comparison is the encoder's one-hot row.
    """

    shift_K: torch.Tensor
    columns_M: torch.Tensor

    def __init__(self, hot_offsets_K: np.ndarray, start_K: np.ndarray, size: int) -> None:
        super().__init__()
        self.register_buffer("shift_K", torch.as_tensor(hot_offsets_K - start_K, dtype=torch.int64))
        self.register_buffer("columns_M", torch.arange(size, dtype=torch.int64))

    def forward(self, leaf: torch.Tensor) -> torch.Tensor:
        """One-hot float32 rows ``(B, M)`` of integer observations ``(B, *shape)``."""
        index_BK = leaf.reshape(leaf.shape[0], -1).to(torch.int64) + self.shift_K
        return (index_BK.unsqueeze(2) == self.columns_M).to(torch.float32).sum(dim=1)


class Preprocess(nn.Module):
    """The encoding of :class:`~dueldqn.spaces.ObservationEncoder` and :func:`~dueldqn.tensors.as_network_input`
    in torch: raw batched observations (one tensor per leaf of the space) to the network's float32 input.

    Args:
        encoder: the encoder of the env's raw observation space.
    """

    def __init__(self, encoder: ObservationEncoder) -> None:
        super().__init__()
        self.kind = encoder.kind
        space = encoder.space
        self.inputs: list[GraphInput] = []
        self.one_hots = nn.ModuleDict()
        if self.kind != "vector":
            assert isinstance(space, gym.spaces.Box)
            shape, dtype = tuple(space.shape), np.dtype(space.dtype)
            # Agent.predict scales whatever reaches the network as uint8: images kept as they are or transposed.
            self.scaled = self.kind in ("identity", "transpose") and dtype == np.uint8
            what = {"identity": "as it is", "transpose": "(H, W, C) transposed to (C, H, W)", "flatten": "flattened"}
            encoding = f"{what[self.kind]}, {_float_of(dtype, self.scaled)}"
            self.inputs.append(GraphInput(INPUT_PREFIX, (), shape, dtype, encoding))
            return
        self.scaled = False
        # The encoder's own layout (leaves in the space's order, their one-hot offsets): one source of truth.
        for part in encoder._parts:
            leaf = part.space
            dtype = np.dtype(leaf.dtype)
            if part.one_hot is not None:
                hot_offsets_K, start_K = part.one_hot
                self.one_hots[str(len(self.inputs))] = _OneHot(hot_offsets_K - part.offset, start_K, part.size)
                encoding = f"one-hot of {type(leaf).__name__} {leaf} ({part.size} columns)"
            else:
                encoding = f"{type(leaf).__name__}, flattened, {_float_of(dtype, False)}"
            shape = tuple(leaf.shape)  # type: ignore[arg-type]
            self.inputs.append(GraphInput(_name(part.path), part.path, shape, dtype, encoding))

    def forward(self, *leaves: torch.Tensor) -> torch.Tensor:
        """The network's input: ``(B, C, H, W)`` images or ``(B, D)`` vectors, float32."""
        if self.kind != "vector":
            (obs,) = leaves
            if self.kind == "transpose":
                obs = obs.permute(0, 3, 1, 2)
            elif self.kind == "flatten":
                obs = obs.reshape(obs.shape[0], -1)
            return obs.to(torch.float32) / 255.0 if self.scaled else obs.to(torch.float32)
        columns = []
        for i, leaf in enumerate(leaves):
            key = str(i)
            if key in self.one_hots:
                columns.append(self.one_hots[key](leaf))
            else:
                columns.append(leaf.reshape(leaf.shape[0], -1).to(torch.float32))
        return torch.cat(columns, dim=1)


class ExportedPolicy(nn.Module):
    """Raw batched observations in, ``(q_values (B, A), action (B,))`` out: what the exported graph computes.

    Args:
        q_net: the trained Q-network (any dueldqn network whose output :func:`q_values_of` reads).
        encoder: the encoder of the env's raw observation space.
    """

    def __init__(self, q_net: nn.Module, encoder: ObservationEncoder) -> None:
        super().__init__()
        self.preprocess = Preprocess(encoder)
        self.q_net = q_net

    def forward(self, *leaves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values ``(B, A)`` float32 and the greedy actions ``(B,)`` int64."""
        q_BA = q_values_of(self.q_net, self.q_net(self.preprocess(*leaves)))
        return q_BA, q_BA.argmax(dim=1)


def example_inputs(inputs: list[GraphInput], batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A batch of in-range zeros-and-ones per input, to trace the graph with (values do not shape it)."""
    rng = np.random.default_rng(seed)
    return tuple(torch.from_numpy(rng.integers(0, 2, (batch, *i.shape)).astype(i.dtype)) for i in inputs)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes that say nothing about this export (torchvision's operators not registered,
    one batch axis shared by several inputs)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def _onnx_modules() -> None:
    """Check the ONNX exporter's dependencies are installed, with a message that says how to get them."""
    missing = [name for name in ("onnx", "onnxscript") if installed_version(name) is None]
    if missing:
        raise ValueError(f"ONNX export needs {' and '.join(missing)}: pip install 'dueldqn[export]'")


def export_onnx(
    q_net: nn.Module, observation_space: gym.Space[Any], path: Path, *, source: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``q_net`` with its preprocessing to ``path`` as ONNX and its description to ``path + ".json"``.

    Args:
        q_net: the trained Q-network (a CPU copy of it is exported; it is left as it is).
        observation_space: the env's raw observation space (what the graph takes).
        path: the ``.onnx`` file to write (its directory must exist).
        source: what the network came from (run directory, weights file and hash), copied into the JSON.

    Returns:
        The JSON description written beside the model.
    """
    _onnx_modules()
    path = Path(path)
    policy = ExportedPolicy(copy.deepcopy(q_net).to("cpu"), ObservationEncoder(observation_space)).eval()
    inputs = policy.preprocess.inputs
    args = example_inputs(inputs)
    with torch.no_grad():
        q_BA, _ = policy(*args)
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter():
        program = torch.onnx.export(
            policy,
            args,
            input_names=[i.name for i in inputs],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=(tuple({0: batch} for _ in inputs),),  # forward(*leaves): one entry, the tuple of leaves
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None
    import onnx

    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    n_actions = int(q_BA.shape[1])
    description = {
        "format": "onnx",
        "file": path.name,
        "opset": OPSET,
        "observation_space": space_to_json(observation_space),
        "encoding": policy.preprocess.kind,
        "inputs": [i.to_json() for i in inputs],
        "network_input": {
            "shape": ["batch", *(int(n) for n in policy.preprocess(*args).shape[1:])],
            "dtype": "float32",
        },
        "outputs": [
            {"name": OUTPUT_NAMES[0], "shape": ["batch", n_actions], "dtype": "float32"},
            {"name": OUTPUT_NAMES[1], "shape": ["batch"], "dtype": "int64", "meaning": "argmax of q_values"},
        ],
        "n_actions": n_actions,
        "versions": {name: installed_version(name) for name in ("dueldqn", "torch", "onnx", "onnxscript")},
        "source": source or {},
    }
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    atomic_write_text(description_path(path), json.dumps(strict_json(description), indent=2, allow_nan=False) + "\n")
    return description


def strict_json(value: Any) -> Any:
    """``value`` with every infinite or NaN float as the string ``"inf"``, ``"-inf"`` or ``"nan"``: strict JSON.

    Python writes ``Infinity`` by default, which JSON parsers of other languages (a browser's ``JSON.parse``)
    refuse; a ``Box`` such as CartPole's has infinite bounds.
    """
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan"
    return value


def description_path(model_path: Path) -> Path:
    """Where the JSON description of an exported model goes: ``model.onnx`` -> ``model.onnx.json``."""
    return Path(model_path).with_name(Path(model_path).name + ".json")


def export_run(run_dir: str | Path, *, fmt: str = "onnx", output: str | Path | None = None) -> Path:
    """Export the trained network of a run directory (its ``model.safetensors``); returns the model's path.

    Raises:
        ValueError: an unknown format, a run directory without a model, a missing extra.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run} is not a run directory; expected a directory written by dueldqn train")
    weights = run / MODEL_FILE
    if not weights.is_file():
        raise ValueError(
            f"{run} holds no {MODEL_FILE}; expected a finished run (a run writes its model when training ends)"
        )
    from dueldqn.agent import Agent

    agent = Agent.load(weights)  # safetensors and JSON: nothing unpickled
    path = Path(output) if output is not None else run / f"model.{fmt}"
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: directory {path.parent} does not exist")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    source = {"run_dir": str(run), "weights": MODEL_FILE, "weights_sha256": digest}
    export_onnx(agent.q_net, agent.observation_space, path, source=source)
    return path
