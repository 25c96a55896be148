"""Search spaces: which :class:`~dueldqn.config.Config` fields a study samples, and over what range.

A space is written as a mapping from a config field to one of::

    learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}     # float field: suggest_float
    epsilon_decay_steps: {low: 1000, high: 20000, step: 1000}  # int field: suggest_int
    batch_size: {choices: [64, 128, 256]}                      # any field: suggest_categorical
    alpha: {low: 0.4, high: 0.8, when: {prioritized: true}}    # sampled only when the condition holds
    target_sync: polyak                                        # a plain value: fixed, not searched
    gamma: null                                                # drop the default space's entry

A file (JSON, or YAML read with ``safe_load``) is merged over the default space of the run's
algorithm family (:func:`default_space`). Every entry is checked before anything runs: the field
must exist and be tunable, the keys known, the range ordered and of the field's type, and each end
of the range (each choice) must make a valid config on its own.

Nothing here imports optuna; :func:`sample` takes its trial object.
"""

from __future__ import annotations

import contextlib
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dueldqn.config import Config

# Fields a study may not search: they define the problem (env, budget, seed) or the machine, not the learner.
UNTUNABLE = (
    "env_id",
    "seed",
    "total_steps",
    "backend",
    "device",
    "torch_threads",
    "numpy_mlp",
    "log_interval",
    "eval_episodes",
    "eval_epsilon",
    "checkpoint_every",
    "keep_checkpoints",
    "save_replay",
)
SPEC_KEYS = ("low", "high", "log", "step", "choices", "when")
# The algorithm families: a study searches the TD targets of one family (SARSA's values follow epsilon).
FAMILIES = {"q-learning": ("dqn", "double"), "sarsa": ("sarsa", "expected-sarsa")}


@dataclass(frozen=True)
class Param:
    """One searched field: a numeric range (``low``..``high``) or a list of ``choices``."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, Any] = field(default_factory=dict)  # sampled only if these fields have these values


@dataclass(frozen=True)
class Space:
    """The searched parameters, in sampling order, and the fields fixed on top of the base config."""

    params: tuple[Param, ...]
    fixed: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the study, so that a resume can check it is the same search)."""
        out: dict[str, Any] = dict(self.fixed)
        for p in self.params:
            spec: dict[str, Any] = (
                {"choices": list(p.choices)} if p.kind == "categorical" else {"low": p.low, "high": p.high}
            )
            if p.log:
                spec["log"] = True
            if p.step is not None:
                spec["step"] = p.step
            if p.when:
                spec["when"] = p.when
            out[p.name] = spec
        return json.loads(json.dumps(out))  # tuples become lists, as they come back from storage


def family(algo: str) -> str:
    """The family (``q-learning`` or ``sarsa``) that ``algo`` belongs to."""
    return next(name for name, algos in FAMILIES.items() if algo in algos)


def default_space(base: Config, *, frames: bool = False) -> dict[str, Any]:
    """The default search space for ``base``'s algorithm family, scaled to its ``total_steps``.

    Both families search the TD target within the family, the learning rate, batch and replay
    sizes, the update ratio (train frequency, gradient steps), the target sync, the epsilon decay,
    the hidden sizes, gamma, the loss, n-step returns and prioritized replay (alpha and beta0 only
    when it is on). SARSA's family also searches the final epsilon, which its values depend on.
    ``frames`` (Atari) drops the MLP hidden sizes and n-step returns, which frame replay lacks.
    A distributional base searches the atoms (21, 51 or 101 on its own ``[v_min, v_max]``) instead of the
    loss (its loss is the cross-entropy); a noisy base searches ``noisy_sigma0``. Other bases' spaces are
    unchanged, so studies started before these fields existed resume with the same space.
    """
    total = base.total_steps
    spec: dict[str, Any] = {
        "algo": {"choices": list(FAMILIES[family(base.algo)])},
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"choices": [32, 64, 128, 256]},
        "buffer_size": {"choices": [10_000, 50_000, 100_000]},
        "train_frequency": {"choices": [1, 2, 4, 8, 16]},
        "gradient_steps": {"choices": [1, 2, 4]},
    }
    if base.target_sync == "polyak":
        spec["tau"] = {"low": 1e-3, "high": 0.1, "log": True}
    elif base.target_sync == "episodes":
        spec["target_sync_every"] = {"choices": [1, 5, 10, 20]}
    else:
        spec["target_sync_every"] = {"choices": [100, 250, 500, 1_000, 2_000]}
    spec["epsilon_decay_steps"] = {"low": max(1, total // 50), "high": max(2, total // 2), "log": True}
    if family(base.algo) == "sarsa":
        spec["epsilon_end"] = {"low": 0.01, "high": 0.2, "log": True}
    if not frames:
        spec["hidden_sizes"] = {"choices": [[64, 64], [128, 128], [256, 256]]}
    spec["gamma"] = {"choices": [0.95, 0.98, 0.99, 0.995]}
    if base.distributional:
        spec["atoms"] = {"choices": [21, 51, 101]}
    else:
        spec["loss"] = {"choices": ["mse", "huber"]}
    if base.noisy:
        spec["noisy_sigma0"] = {"low": 0.1, "high": 1.0, "log": True}
    if not frames:
        spec["n_step"] = {"choices": [1, 3, 5]}
    spec["prioritized"] = {"choices": [False, True]}
    spec["alpha"] = {"low": 0.4, "high": 0.8, "when": {"prioritized": True}}
    spec["beta0"] = {"low": 0.2, "high": 0.6, "when": {"prioritized": True}}
    return spec


def read_space_file(path: Path) -> dict[str, Any]:
    """Read a space file: JSON (``.json``) or YAML (``.yaml`` / ``.yml``, ``safe_load``), a mapping of fields."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read the search space file {path}: {err}") from err
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"search space file {path} is not valid YAML: {err}") from err
    elif path.suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"search space file {path} is not valid JSON: {err}") from err
    else:
        raise ValueError(f"search space file {path}: expected a .json, .yaml or .yml file")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"search space file {path}: expected a mapping of config fields to ranges")
    return values


def _field_kinds() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def _number(name: str, key: str, value: Any, kind: str) -> float:
    """A range end as a number; YAML reads ``1e-4`` (no dot) as a string, which is accepted."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"search space: {name}.{key} must be a number; got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            raise ValueError(f"search space: {name} is an integer field; {key} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def _param(name: str, spec: dict[str, Any], kinds: dict[str, Any]) -> Param:
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"search space: {name} has unknown key(s) {', '.join(unknown)}; expected {', '.join(SPEC_KEYS)}"
        )
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise ValueError(f"search space: {name}.when must be a mapping of field to value; got {when!r}")
    if "choices" in spec:
        extra = sorted(set(spec) & {"low", "high", "log", "step"})
        if extra:
            raise ValueError(f"search space: {name} gives choices and {', '.join(extra)}; give one or the other")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"search space: {name}.choices must be a non-empty list; got {choices!r}")
        return Param(name, "categorical", choices=tuple(choices), when=dict(when))
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"search space: {name} needs either choices or both low and high; got {spec!r}")
    kind = {int: "int", float: "float"}.get(kinds[name])
    if kind is None:
        raise ValueError(f"search space: {name} is not numeric; give it choices (e.g. {{choices: [...]}})")
    low, high = _number(name, "low", spec["low"], kind), _number(name, "high", spec["high"], kind)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"search space: {name}.log must be true or false; got {log!r}")
    step = None if spec.get("step") is None else _number(name, "step", spec["step"], kind)
    if not low < high:
        raise ValueError(f"search space: {name} needs low < high; got low={low}, high={high}")
    if log and low <= 0:
        raise ValueError(f"search space: {name} is log-scaled, so low must be positive; got {low}")
    if step is not None and (log or step <= 0):
        raise ValueError(f"search space: {name}.step must be positive and cannot go with log; got {step}")
    return Param(name, kind, low=low, high=high, log=log, step=step, when=dict(when))


def _decode(param: Param, value: Any) -> Any:
    """A sampled value as the config takes it: hidden sizes travel through optuna as '64x64'."""
    if param.name == "hidden_sizes" and isinstance(value, str):
        return [int(h) for h in value.split("x")]
    return value


def _choices_for_optuna(param: Param) -> tuple[Any, ...]:
    """Categorical choices optuna can store (None, bool, int, float, str): lists become '64x64'."""
    return tuple("x".join(str(h) for h in c) if isinstance(c, list) else c for c in param.choices)


def parse_space(spec: dict[str, Any], base: Config) -> Space:
    """Check ``spec`` against ``base`` and build the :class:`Space`; a bad entry is a ``ValueError``."""
    kinds = _field_kinds()
    tunable = sorted(set(kinds) - set(UNTUNABLE))
    params: list[Param] = []
    fixed: dict[str, Any] = {}
    for name, entry in spec.items():
        if name not in kinds:
            raise ValueError(f"search space: unknown parameter {name!r}; tunable config fields: {', '.join(tunable)}")
        if name in UNTUNABLE:
            raise ValueError(
                f"search space: {name} cannot be searched (it defines the problem or the machine); "
                f"tunable config fields: {', '.join(tunable)}"
            )
        if entry is None:
            continue
        if isinstance(entry, dict):
            params.append(_param(name, entry, kinds))
        else:
            fixed[name] = entry
    try:
        fixed_base = base.replace(**fixed)
    except (ValueError, TypeError) as err:
        raise ValueError(f"search space: the fixed values {fixed} do not make a valid config: {err}") from err
    seen: dict[str, Param] = {}
    for p in params:
        for other, value in p.when.items():
            if other not in kinds:
                raise ValueError(f"search space: {p.name}.when names unknown field {other!r}")
            if other in seen and seen[other].kind == "categorical" and value not in seen[other].choices:
                raise ValueError(
                    f"search space: {p.name}.when asks for {other}={value!r}, which is not one of its choices "
                    f"{list(seen[other].choices)}"
                )
            if other not in seen and any(q.name == other for q in params):
                raise ValueError(f"search space: {p.name}.when names {other}, which must come before {p.name}")
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        for value in values:
            try:
                fixed_base.replace(**{p.name: _decode(p, value)})
            except (ValueError, TypeError) as err:
                raise ValueError(f"search space: {p.name}={value!r} is not a valid setting: {err}") from err
        if p.kind == "categorical" and p.name == "hidden_sizes":
            if not all(isinstance(c, list) for c in p.choices):
                raise ValueError(f"search space: hidden_sizes choices must be lists of layer sizes; got {p.choices}")
        elif p.kind == "categorical" and not all(c is None or isinstance(c, bool | int | float | str) for c in values):
            raise ValueError(f"search space: {p.name} choices must be numbers, strings or booleans; got {p.choices}")
        seen[p.name] = p
    space = Space(tuple(params), fixed)
    _check_corners(space, fixed_base)
    return space


def _check_corners(space: Space, base: Config) -> None:
    """The smallest and the largest of every range together must still make a config (e.g. batch <= buffer)."""
    smallest_buffer = min(_range(space, "buffer_size", base.buffer_size))
    largest_batch = max(_range(space, "batch_size", base.batch_size))
    if largest_batch > smallest_buffer:
        raise ValueError(
            f"search space: batch_size up to {largest_batch} exceeds buffer_size down to {smallest_buffer}; "
            "every batch must fit in the replay memory"
        )
    numeric = [p for p in space.params if p.kind != "categorical" or all(isinstance(c, int | float) for c in p.choices)]
    for end in (0, -1):
        values = {p.name: sorted(p.choices)[end] if p.kind == "categorical" else (p.low, p.high)[end] for p in numeric}
        try:
            base.replace(**values)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"search space: the {('low', 'high')[end]} ends of the ranges together fail: {err}"
            ) from err


def _range(space: Space, name: str, default: int) -> list[float]:
    for p in space.params:
        if p.name == name:
            return list(p.choices) if p.kind == "categorical" else [p.low, p.high]
    return [space.fixed.get(name, default)]


def sample(space: Space, trial: Any, base: Config) -> dict[str, Any]:
    """Ask an optuna ``trial`` for each parameter (in order); returns the config changes, fixed ones included.

    A parameter with ``when`` is asked for only if those fields (sampled, fixed or ``base``'s) match.
    """
    values: dict[str, Any] = dict(space.fixed)
    for p in space.params:
        if any(values.get(k, getattr(base, k)) != v for k, v in p.when.items()):
            continue
        if p.kind == "categorical":
            value = trial.suggest_categorical(p.name, _choices_for_optuna(p))
        elif p.kind == "int":
            value = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            value = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        values[p.name] = _decode(p, value)
    return values


def build_space(base: Config, path: Path | None = None, *, frames: bool = False) -> Space:
    """The default space for ``base``, with the file at ``path`` (if any) merged over it, checked."""
    spec = default_space(base, frames=frames)
    if path is not None:
        spec.update(read_space_file(path))
    return parse_space(spec, base)
