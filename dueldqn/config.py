"""Run configuration: one frozen dataclass, validated on creation, and named presets.

Parsing (command line, JSON files) happens at the edge; the library takes a :class:`Config`.
Every field carries a docstring, which the command line also shows as its help.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import math
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from dueldqn.atari_protocol import is_atari
from dueldqn.presets import DEFAULT_PRESETS, PRESETS

# The names each choice accepts. They live here, with no heavy import, so that the command line can
# build its help without loading torch; targets.py and exploration.py dispatch on the same tuples.
ALGORITHMS = ("dqn", "double", "sarsa", "expected-sarsa")
LOSSES = ("mse", "huber")
SCHEDULES = ("constant", "linear", "exponential")
TARGET_SYNCS = ("episodes", "steps", "polyak")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("gymnasium", "envpool")
EXECUTORS = ("local", "ray")
ACTION_MASKS = ("auto", "on", "off")


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Invalid values raise ``ValueError`` on creation."""

    env_id: str = "CartPole-v1"
    """Gymnasium environment id; any env with a Discrete action space (e.g. MountainCar-v0)."""
    algo: str = "dqn"
    """TD target: dqn (Q-learning), double (Double Q-learning), sarsa (Deep SARSA), expected-sarsa."""
    seed: int = 0
    """Seed of every random generator of the run (envs, replay sampling, exploration, weights)."""
    total_steps: int = 100_000
    """Environment steps to train for, summed over the parallel envs."""
    num_envs: int = 1
    """Parallel environments stepped together (gymnasium vector env)."""
    backend: str = "gymnasium"
    """Environment backend: gymnasium, or envpool (vectorised C++ Atari envs)."""
    dueling: bool = True
    """Dueling head Q = V + (A - mean A); --no-dueling gives the plain Q-network."""
    distributional: bool = False
    """C51 (Bellemare et al., 2017): learn the return's distribution on atoms points of [v_min, v_max] by
    cross-entropy (loss stays mse, unused); act by its expected Q; prioritized replay's priority is the loss."""
    atoms: int = 51
    """Distributional: support points of the return distribution (C51's 51; at least 2)."""
    v_min: float = -10.0
    """Distributional: the support's lowest return (targets below it are clipped to it)."""
    v_max: float = 10.0
    """Distributional: the support's highest return (targets above it are clipped to it)."""
    noisy: bool = False
    """Noisy nets (Fortunato et al., 2018): factorised Gaussian NoisyLinear head layers, new noise per update
    (online and target) and per act step; evaluation uses the mean weights. epsilon may then be 0."""
    noisy_sigma0: float = 0.5
    """Noisy nets: initial noise scale sigma0 (sigma starts at sigma0 / sqrt(fan-in); the paper's 0.5)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP encoder for vector observations."""
    learning_rate: float = 1e-3
    """AdamW learning rate (alpha in the lecture)."""
    lr_final_fraction: float = 1.0
    """Learning rate at the end of the run as a fraction of the first; annealed linearly (1 = constant)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay (PyTorch's default, which the lecture uses)."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 0.0
    """Clip the gradient's global L2 norm to this value before each step; 0 turns clipping off."""
    loss: str = "mse"
    """TD loss: mse (the lecture's mean squared TD error) or huber."""
    batch_size: int = 64
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay memory capacity in transitions."""
    prioritized: bool = False
    """Proportional prioritized replay (Schaul et al., 2016): sample transition i with probability p_i / sum p."""
    alpha: float = 0.6
    """Prioritized replay: p_i = (|TD error_i| + priority_eps) ** alpha; 0 is uniform sampling."""
    beta0: float = 0.4
    """Prioritized replay: importance-sampling exponent at the first update, annealed linearly to 1 at the end."""
    priority_eps: float = 1e-6
    """Prioritized replay: added to |TD error| so that no stored transition gets priority 0."""
    learning_starts: int = 1_000
    """Env steps of experience collected before the first update (the warm-up)."""
    train_frequency: int = 1
    """Update every this many vector-env steps."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    gamma: float = 0.99
    """Discount factor."""
    action_mask: str = "auto"
    """Invalid-action masks from info['action_mask'] or an action_masks() method: auto (used when the env gives
    one), on (required), off. Masked: exploration, greedy actions and every target range over legal actions only."""
    n_step: int = 1
    """n-step returns: fold up to n rewards of the same episode into the target, bootstrap with gamma ** k."""
    target_sync: str = "steps"
    """How the target network follows the online one: every k episodes, every N steps, or polyak."""
    target_sync_every: int = 500
    """k episodes or N env steps between hard target syncs (for episodes and steps)."""
    tau: float = 0.005
    """Polyak rate: after each gradient step theta_targ <- tau * theta + (1 - tau) * theta_targ."""
    epsilon_schedule: str = "linear"
    """Exploration schedule: constant (epsilon_start throughout), linear, or exponential."""
    epsilon_start: float = 1.0
    """Epsilon at step 0 (the constant value for the constant schedule)."""
    epsilon_end: float = 0.05
    """Epsilon once the schedule has decayed."""
    epsilon_decay_steps: int = 10_000
    """Env steps over which epsilon decays (linear: reaches the end; exponential: 99% of the way)."""
    eval_episodes: int = 20
    """Episodes of the evaluation at the end of training."""
    eval_epsilon: float = 0.0
    """Epsilon of the evaluation policy (0 = greedy)."""
    eval_every: int = 0
    """Env steps between evaluations during training (eval_episodes each, on their own env seed); 0: none."""
    stop_return: float | None = None
    """Stop training once an evaluation during training reaches this mean return (needs eval_every)."""
    log_interval: int = 1_000
    """Env steps between rows of loss, epsilon and steps/s in metrics.csv and TensorBoard."""
    device: str = "auto"
    """Where the networks run: auto (cuda when available), cpu, or cuda."""
    torch_threads: int = 0
    """CPU threads for torch (and numpy's BLAS for MLPs); 0 picks 1 for MLPs (faster) and, for conv nets on the CPU,
    times the loop on 1, 2, 4, ... threads and keeps the fastest, re-checking as it goes (``dueldqn.threads``)."""
    numpy_mlp: bool = True
    """On the CPU, act and learn with MLP Q-networks through numpy: the same maths, updates ~2.5x faster
    (plain heads only: distributional and noisy networks always run on torch)."""
    checkpoint_every: int = 100_000
    """Env steps between full-state checkpoints (one is always written at the end); 0: only at the end."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    save_replay: bool = True
    """Put the replay memory in checkpoints; --no-save-replay for big Atari buffers (a resume then refills it)."""
    augment: bool = False
    """DrQ augmentation of image batches (Kostrikov et al.): s and s' shifted by up to 4 px and scaled by ~1 +- 0.1."""
    epsilon_decay_start: int = 0
    """Env step at which the epsilon schedule starts (epsilon_start until then); Atari 100k: after the warm-up."""
    executor: str = "local"
    """Where training runs: local (one process) or ray (Ape-X: env-runner actors, replay shards, a learner)."""
    num_env_runners: int = 2
    """Ray: env-runner actors, each stepping envs_per_runner envs with its own Ape-X epsilons."""
    envs_per_runner: int = 1
    """Ray: envs each runner steps together (epsilons eps_i = base ** (1 + alpha i / (N - 1)) over all N envs)."""
    apex_epsilon_base: float = 0.4
    """Ray: the highest of the runners' exploration rates (Ape-X's base, 0.4)."""
    apex_epsilon_alpha: float = 7.0
    """Ray: the spread of the runners' rates, from base down to base ** (1 + alpha) (Ape-X's alpha, 7)."""
    replay_shards: int = 1
    """Ray: replay actors; runner r writes to shard r % replay_shards, the learner samples them in turn."""
    runner_chunk_steps: int = 100
    """Ray: vector steps a runner collects per chunk pushed to replay (at most 2 chunks in flight per runner)."""
    weight_sync_every: int = 50
    """Ray: learner updates between weight publications (one ray.put of a versioned numpy copy)."""
    runner_sync_steps: int = 400
    """Ray: env steps a runner takes between looking for newer weights."""
    max_samples_per_insert: float = 0.0
    """Ray: cap on sampled transitions per inserted one (the replay ratio); 0 takes the local loop's,
    batch_size * gradient_steps / (train_frequency * num_envs)."""
    runner_rate_limit: bool = False
    """Ray: runners wait while the learner lags the samples-per-insert target by over a chunk per runner
    (keeps the local loop's replay ratio on a small machine; Ape-X's runners never wait)."""
    ray_address: str = ""
    """Ray: cluster address; empty joins a running cluster (ray start / RAY_ADDRESS) if any, else starts a local one."""

    def __post_init__(self) -> None:
        # Coerce list-valued input (JSON, CLI) so the frozen config stays hashable and comparable.
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if self.action_mask is None or isinstance(self.action_mask, bool):  # True / False / None: on / off / auto
            object.__setattr__(self, "action_mask", {None: "auto", True: "on", False: "off"}[self.action_mask])
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build a config from a mapping; unknown keys are an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied and validated."""
        return Config.from_dict({**self.to_dict(), **changes})


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _validate(c: Config) -> None:
    _one_of("algo", c.algo, ALGORITHMS)
    _one_of("loss", c.loss, LOSSES)
    _one_of("target_sync", c.target_sync, TARGET_SYNCS)
    _one_of("epsilon_schedule", c.epsilon_schedule, SCHEDULES)
    _one_of("device", c.device, DEVICES)
    _one_of("backend", c.backend, BACKENDS)
    _one_of("executor", c.executor, EXECUTORS)
    _one_of("action_mask", c.action_mask, ACTION_MASKS)
    for f in fields(c):
        if f.type in (bool, "bool") and not isinstance(getattr(c, f.name), bool):
            raise ValueError(f"{f.name} must be true or false; got {getattr(c, f.name)!r}")
    if not c.env_id or not isinstance(c.env_id, str):
        raise ValueError(f"env_id must be a gymnasium environment id such as 'CartPole-v1'; got {c.env_id!r}")
    positive = (
        "total_steps",
        "num_envs",
        "batch_size",
        "buffer_size",
        "train_frequency",
        "gradient_steps",
        "n_step",
        "target_sync_every",
        "eval_episodes",
        "log_interval",
        "keep_checkpoints",
        "num_env_runners",
        "envs_per_runner",
        "replay_shards",
        "runner_chunk_steps",
        "weight_sync_every",
        "runner_sync_steps",
    )
    for name in positive:
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    for name in (
        "learning_starts",
        "epsilon_decay_steps",
        "torch_threads",
        "seed",
        "checkpoint_every",
        "epsilon_decay_start",
        "eval_every",
    ):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    if c.stop_return is not None:
        if isinstance(c.stop_return, bool) or not isinstance(c.stop_return, int | float) or math.isnan(c.stop_return):
            raise ValueError(f"stop_return must be a number (a mean episode return); got {c.stop_return!r}")
        if not c.eval_every:
            raise ValueError("stop_return needs evaluations during training: set eval_every (env steps between them)")
    if not c.learning_rate > 0:
        raise ValueError(f"learning_rate must be positive; got {c.learning_rate}")
    for name in ("gamma", "epsilon_start", "epsilon_end", "eval_epsilon", "lr_final_fraction"):
        value = getattr(c, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {value}")
    if not 0.0 < c.apex_epsilon_base <= 1.0:
        raise ValueError(f"apex_epsilon_base must lie in (0, 1]; got {c.apex_epsilon_base}")
    if not c.apex_epsilon_alpha >= 0.0:
        raise ValueError(f"apex_epsilon_alpha must be >= 0; got {c.apex_epsilon_alpha}")
    if not 0.0 < c.tau <= 1.0:
        raise ValueError(f"tau must lie in (0, 1]; got {c.tau}")
    for name in ("weight_decay", "max_grad_norm"):
        if getattr(c, name) < 0:
            raise ValueError(f"{name} must be >= 0; got {getattr(c, name)}")
    if not c.adam_eps > 0:
        raise ValueError(f"adam_eps must be positive; got {c.adam_eps}")
    for name in ("alpha", "beta0"):
        if not 0.0 <= getattr(c, name) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {getattr(c, name)}")
    if not c.priority_eps > 0:
        raise ValueError(
            f"priority_eps must be positive (no stored transition may get priority 0); got {c.priority_eps}"
        )
    if c.batch_size > c.buffer_size:
        raise ValueError(
            f"batch_size ({c.batch_size}) must not exceed the replay capacity buffer_size ({c.buffer_size})"
        )
    if not c.max_samples_per_insert >= 0:
        raise ValueError(
            f"max_samples_per_insert must be >= 0 (0: the local loop's ratio); got {c.max_samples_per_insert}"
        )
    if c.replay_shards > c.num_env_runners:
        raise ValueError(
            f"replay_shards ({c.replay_shards}) must not exceed num_env_runners ({c.num_env_runners}): "
            "a shard without a runner would never be filled"
        )
    _validate_rainbow(c)
    if not c.hidden_sizes or any(h < 1 for h in c.hidden_sizes):
        raise ValueError(f"hidden_sizes must be one or more positive layer sizes; got {list(c.hidden_sizes)}")


def _validate_rainbow(c: Config) -> None:
    """The distributional and noisy fields, and the options they cannot honour."""
    if not isinstance(c.atoms, int) or isinstance(c.atoms, bool) or c.atoms < 2:
        raise ValueError(f"atoms must be an integer >= 2 (support points of the return distribution); got {c.atoms!r}")
    for name in ("v_min", "v_max", "noisy_sigma0"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    if not c.v_min < c.v_max:
        raise ValueError(
            f"v_min must be below v_max (the support [v_min, v_max]); got v_min={c.v_min}, v_max={c.v_max}"
        )
    if not c.noisy_sigma0 > 0:
        raise ValueError(f"noisy_sigma0 must be positive (the initial noise scale); got {c.noisy_sigma0}")
    if c.distributional and c.loss != "mse":
        raise ValueError(
            f"loss={c.loss!r} cannot apply with distributional: the C51 learner minimises the cross-entropy; "
            "leave loss at its default 'mse' (unused)"
        )


@cache
def field_docs() -> dict[str, str]:
    """Each field's docstring, read from this module's source (shown as command-line help)."""
    tree = ast.parse(inspect.getsource(Config))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            docs[node.target.id] = str(after.value.value)
    return docs


def resolve_config(
    env_id: str | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> Config:
    """Config defaults, then the preset (named, or the env's default one), then ``overrides``.

    ``resolve_config()`` is the CartPole-v1 preset; ``resolve_config("Acrobot-v1")`` the Acrobot one;
    ``ALE/`` ids take ``atari`` (``breakout`` for Breakout). Deep SARSA on CartPole-v1 takes the
    ``cartpole-sarsa`` preset.
    """
    overrides = dict(overrides or {})
    env = env_id or overrides.get("env_id")
    if preset is None:
        env_or_default = env or Config.env_id
        preset = DEFAULT_PRESETS.get(env_or_default, "atari" if is_atari(env_or_default) else None)
        if preset == "cartpole" and overrides.get("algo") == "sarsa":
            preset = "cartpole-sarsa"
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(sorted(PRESETS))}")
        values.update(PRESETS[preset])
    if env:
        values["env_id"] = env
    values.update(overrides)
    return Config.from_dict(values)


def load_config(path: Path) -> Config:
    """Read a run's ``config.json`` (:meth:`Config.to_dict` as JSON), with a clear error for a bad file."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the run config {path}: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object of config fields in {path}")
    return Config.from_dict(values)
