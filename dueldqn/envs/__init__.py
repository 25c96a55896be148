"""Environments: gymnasium vector envs for training, a single env for evaluation.

Observations that are not a 1-D ``Box`` or a channels-first image (``Discrete``, ``Dict``, images
in ``(H, W, C)`` layout, ...) reach the training loop encoded by :mod:`dueldqn.spaces` (an
:class:`~dueldqn.spaces.EncodeObservation` wrapper inside each training env); the evaluation env
returns the raw observations, which :class:`dueldqn.agent.Agent` encodes itself.

Training envs use gymnasium 1.x's default next-step autoreset: after an episode ends, the next
``step`` of that env only resets it (its action is ignored, reward 0). The training loop marks
that step invalid so it is never stored as a transition. ``RecordEpisodeStatistics`` inside
each env reports each finished episode's return and length in ``infos["episode"]``.
"""

from __future__ import annotations

import base64
import difflib
import functools
import importlib
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import gymnasium as gym
import numpy as np

from dueldqn.atari_protocol import is_atari
from dueldqn.envs.errors import MissingDependency
from dueldqn.spaces import EncodeObservation, ObservationEncoder


def stacks_frames(env_id: str) -> bool:
    """Whether the env's observations are stacks of consecutive frames (Atari ids, ``ALE/...``).

    Only then does ``s'`` repeat all but the newest frame of ``s``, which
    :class:`~dueldqn.replay.FrameReplayBuffer` relies on; other images are not stacks.
    """
    return is_atari(env_id)


@contextmanager
def _optional_dependencies(env_id: str) -> Iterator[None]:
    """Turn a missing optional package (Box2D, MuJoCo, ale-py, ...) into a ``ValueError`` that says what to install.

    Only the two errors that mean "not installed" are caught: gymnasium's ``DependencyNotInstalled``
    and :class:`MissingDependency`; any other ``ImportError`` (a broken install) stays as it is.
    """
    try:
        yield
    except gym.error.DependencyNotInstalled as err:  # gymnasium's Box2D, MuJoCo, pygame envs
        raise ValueError(f"{env_id} needs a package that is not installed. {err}") from err
    except MissingDependency as err:  # dueldqn names the package (ale-py, opencv, envpool, minatar) and how to get it
        raise ValueError(f"{env_id} needs a package that is not installed: {err}") from err


def _register_minatar() -> None:
    """Register MinAtar's ``MinAtar/...`` ids (the package registers them only when asked)."""
    try:
        from minatar.gym import register_envs
    except ImportError as err:
        raise MissingDependency("MinAtar environments need the minatar package: pip install minatar") from err
    register_envs()


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` naming close matches if ``env_id`` is not a registered environment.

    ``"module:EnvId-v0"`` (gymnasium's form, which ``gym.make`` understands) imports ``module`` first,
    which registers ``EnvId-v0``: so a worker process finds an env registered outside gymnasium.
    """
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"cannot import {module!r} to register {env_id!r}: {err}") from err
    if env_id.startswith("MinAtar/") and env_id not in gym.registry:
        with _optional_dependencies(env_id):
            _register_minatar()
    if is_atari(env_id):
        from dueldqn.envs.atari import is_atari_id

        if is_atari_id(env_id):
            return
    elif env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown environment id {env_id!r}: expected a registered gymnasium id such as 'CartPole-v1'{hint}"
    )


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise ``ValueError`` unless actions are Discrete and observations a space :mod:`dueldqn.spaces` encodes."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(
            f"{env_id} has action space {action_space}; Q-learning needs a Discrete action space "
            "(one Q-value per action). Continuous control needs an actor-critic method (SAC, TD3)."
        )
    try:
        ObservationEncoder(observation_space)
    except ValueError as err:
        raise ValueError(f"{env_id} has observation space {observation_space}: {err}") from err


def _make_training_env(env_id: str) -> gym.Env:
    """One training env: observations encoded when the network cannot take them as they are."""
    env: gym.Env = gym.make(env_id)
    check_spaces(env_id, env.observation_space, env.action_space)
    encoder = ObservationEncoder(env.observation_space)
    if not encoder.is_identity:
        env = EncodeObservation(env, encoder)
    return gym.wrappers.RecordEpisodeStatistics(env)


def raw_observation_space(envs: gym.vector.VectorEnv) -> gym.Space:
    """The observation space of one env before :class:`~dueldqn.spaces.EncodeObservation` (if any)."""
    if isinstance(envs, gym.vector.SyncVectorEnv):
        for layer in _layers(envs.envs[0]):
            if isinstance(layer, EncodeObservation):
                return layer.encoder.space
    return envs.single_observation_space


class BoxSyncVectorEnv(gym.vector.SyncVectorEnv):
    """gymnasium's ``SyncVectorEnv`` with a leaner ``step`` for Box observations and next-step autoreset.

    It returns what ``SyncVectorEnv.step`` returns (``tests/test_train.py`` compares them step by
    step) but skips the generic machinery a Box needs none of: iterating actions through the
    action space, concatenating observations through ``singledispatch``, deep-copying them, and
    merging empty infos. That is about half of the vector env's 12 us per CartPole step.
    """

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env with its action; an env whose episode ended on the last step is reset instead."""
        if self.autoreset_mode != gym.vector.AutoresetMode.NEXT_STEP:
            return super().step(actions)
        obs_NO = np.empty(cast(tuple[int, ...], self.observation_space.shape), self.observation_space.dtype)
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            if self._autoreset_envs[i]:
                obs, info = env.reset()
                self._rewards[i], self._terminations[i], self._truncations[i] = 0.0, False, False
            else:
                obs, self._rewards[i], self._terminations[i], self._truncations[i], info = env.step(actions[i])
            self._env_obs[i] = obs_NO[i] = obs
            if info:
                infos = self._add_info(infos, info, i)
        self._autoreset_envs = self._terminations | self._truncations
        return obs_NO, self._rewards.copy(), self._terminations.copy(), self._truncations.copy(), infos


def make_vec_env(env_id: str, num_envs: int, seed: int, backend: str = "gymnasium") -> gym.vector.VectorEnv:
    """Training envs: ``num_envs`` copies of ``env_id`` stepped together, seeded ``seed + i``.

    Atari ids (``ALE/...``) get the standard DQN preprocessing (:mod:`dueldqn.envs.atari`); other
    envs' observations are encoded by :mod:`dueldqn.spaces` where needed.

    Raises:
        ValueError: for an unknown id, unsupported spaces, or a missing optional package.
    """
    check_env_id(env_id)
    with _optional_dependencies(env_id):
        if is_atari(env_id):
            from dueldqn.envs.atari import make_atari_vec_env

            envs = make_atari_vec_env(env_id, num_envs=num_envs, seed=seed, backend=backend)
        else:
            if backend != "gymnasium":
                raise ValueError(f"backend {backend!r} is only for Atari ids (ALE/...); use backend 'gymnasium'")
            envs = BoxSyncVectorEnv([lambda: _make_training_env(env_id) for _ in range(num_envs)])
    check_spaces(env_id, envs.single_observation_space, envs.single_action_space)
    envs.single_action_space.seed(seed)
    return envs


# An evaluation episode of an env registered without a time limit (CliffWalking-v1) ends after this
# many steps: a greedy policy that walks into a wall would otherwise never finish its episode.
EVAL_MAX_EPISODE_STEPS = 10_000


def make_eval_env(env_id: str, seed: int, render_mode: str | None = None) -> gym.Env:
    """One env for evaluation: full episodes, unclipped rewards (Atari: full game, no life-loss terminal).

    Its observations are the env's own (not encoded): :class:`dueldqn.agent.Agent` encodes them.
    An env registered without a time limit gets one of ``EVAL_MAX_EPISODE_STEPS``.
    """
    check_env_id(env_id)
    if render_mode == "rgb_array":  # drawn off-screen: pygame needs no display (and should not look for one)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env: gym.Env
    with _optional_dependencies(env_id):
        if is_atari(env_id):
            from dueldqn.envs.atari import make_atari_env

            env = make_atari_env(env_id, seed=seed, training=False, render_mode=render_mode)
        else:
            env = gym.make(env_id, render_mode=render_mode)
            if env.spec is not None and env.spec.max_episode_steps is None:  # e.g. CliffWalking-v1
                env = gym.wrappers.TimeLimit(env, EVAL_MAX_EPISODE_STEPS)
    check_spaces(env_id, env.observation_space, env.action_space)
    env.action_space.seed(seed)
    return env


# Atari's evaluation plays 100 whole games (the Atari 100k protocol) batched over this many envs.
EVAL_NUM_ENVS = 16


def make_eval_vec_env(env_id: str, num_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` evaluation envs (:func:`make_eval_env`, env ``i`` seeded ``seed + i``) for
    :func:`dueldqn.evaluate.evaluate_vector`, which steps them one by one."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    thunks = [functools.partial(make_eval_env, env_id, seed + i) for i in range(num_envs)]
    return gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


# Environment progress for exact resume. gymnasium has no get/set-state API, but its classic
# control and toy-text envs keep all their progress in plain attributes (the physical state,
# step counters, the episode statistics, the env's numpy generator), and so do the wrappers
# around them and SyncVectorEnv's autoreset flags. Those attributes are saved as JSON. Atari's
# emulator is saved by dueldqn.envs.atari_state (its reset state and the frames' actions since,
# replayed and checked at restore); the Atari wrappers' own state (frame stack, max-pool buffer,
# lives, no-op generator) is plain attributes like the others. Other envs (Box2D, MuJoCo, EnvPool)
# hold state in native objects: they are reset on resume.
_RESTORABLE_MODULES = ("gymnasium.envs.classic_control", "gymnasium.envs.toy_text", "dueldqn.envs.testing")
# time_queue: RecordEpisodeStatistics' wall-clock episode durations, not progress (and never equal across runs)
_SKIP_ATTRIBUTES = {
    "_saved_kwargs",
    "render_mode",
    "screen",
    "clock",
    "isopen",
    "_np_random_seed",
    "metadata",
    "time_queue",
}


def _layers(env: gym.Env) -> list[Any]:
    chain: list[Any] = []
    while True:
        chain.append(env)
        if not isinstance(env, gym.Wrapper):
            return chain
        env = env.env


def _encode(value: Any) -> Any:
    """A JSON-ready form of a plain attribute value, or ``_SKIP`` for anything else.

    ``uint8`` arrays (Atari frames) are stored as base64 of their bytes; lists and deques
    (a frame stack's queue) element by element, all or nothing.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"__ndarray__": [value.item()], "dtype": str(value.dtype), "shape": []}
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        text = base64.b64encode(value.tobytes()).decode("ascii")
        return {"__bytes__": text, "dtype": "uint8", "shape": list(value.shape)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"__ndarray__": value.ravel().tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, (list, deque)):
        items = [_encode(item) for item in value]
        if any(item is _SKIP for item in items):
            return _SKIP
        return {"__deque__": items, "maxlen": value.maxlen} if isinstance(value, deque) else {"__list__": items}
    return _SKIP


def _decode(value: Any, current: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        array = np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return array[()] if not value["shape"] else array
    if isinstance(value, dict) and "__bytes__" in value:
        return np.frombuffer(base64.b64decode(value["__bytes__"]), dtype=value["dtype"]).reshape(value["shape"]).copy()
    if isinstance(value, dict) and "__generator__" in value:
        generator = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        generator.bit_generator.state = value["__generator__"]
        return generator
    if isinstance(value, dict) and "__list__" in value:
        return [_decode(item, None) for item in value["__list__"]]
    if isinstance(value, dict) and "__deque__" in value:
        return deque((_decode(item, None) for item in value["__deque__"]), maxlen=value["maxlen"])
    return value


_SKIP = object()


def _replay_log(env: gym.Env) -> Any:
    """The Atari emulator's :class:`~dueldqn.envs.atari_state.AleReplayLog` in ``env``, or ``None``."""
    if not type(env.unwrapped).__module__.startswith("ale_py"):
        return None
    from dueldqn.envs.atari_state import find_replay_log

    return find_replay_log(env)


def _restorable(env: gym.Env) -> bool:
    return type(env.unwrapped).__module__.startswith(_RESTORABLE_MODULES) or _replay_log(env) is not None


def vector_env_state(envs: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The progress of every sub-env and of the vector env itself, JSON-ready; ``None`` if not restorable.

    Atari envs (gymnasium backend) add ``"ale"``: per env, the emulator's state at its game's
    reset, the frames' actions since, and its current state (:mod:`dueldqn.envs.atari_state`).
    EnvPool has no state API: ``None``, and a resumed run starts new games.
    """
    if not isinstance(envs, gym.vector.SyncVectorEnv) or not all(_restorable(env) for env in envs.envs):
        return None

    def attributes(obj: Any) -> dict[str, Any]:
        encoded = {k: _encode(v) for k, v in vars(obj).items() if k not in _SKIP_ATTRIBUTES}
        return {k: v for k, v in encoded.items() if v is not _SKIP}

    state: dict[str, Any] = {
        "vector": {"_autoreset_envs": _encode(envs._autoreset_envs)},
        "envs": [[attributes(layer) for layer in _layers(env)] for env in envs.envs],
    }
    logs = [_replay_log(env) for env in envs.envs]
    if any(log is not None for log in logs):
        from dueldqn.envs.atari_state import ale_state

        state["ale"] = [ale_state(log) for log in logs]
    return state


def restore_vector_env_state(envs: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Put back what :func:`vector_env_state` saved, into envs built from the same config.

    Raises:
        ValueError: when the state does not fit these envs, or an Atari emulator cannot be
            rebuilt exactly (see :func:`dueldqn.envs.atari_state.restore_ale_state`).
    """
    if not isinstance(envs, gym.vector.SyncVectorEnv) or len(state["envs"]) != len(envs.envs):
        raise ValueError("the saved environment state does not match these environments")
    logs = [_replay_log(env) for env in envs.envs]
    if ("ale" in state) != any(log is not None for log in logs):
        raise ValueError("the saved environment state is not of these environments (Atari and not Atari)")
    if "ale" in state:
        from dueldqn.envs.atari_state import restore_ale_state

        for log, saved in zip(logs, state["ale"], strict=True):
            restore_ale_state(log, saved)
    envs._autoreset_envs = _decode(state["vector"]["_autoreset_envs"], None)
    for env, saved_layers in zip(envs.envs, state["envs"], strict=True):
        layers = _layers(env)
        if len(layers) != len(saved_layers):
            raise ValueError("the saved environment state has another wrapper stack than these environments")
        for layer, saved in zip(layers, saved_layers, strict=True):
            for name, value in saved.items():
                setattr(layer, name, _decode(value, getattr(layer, name, None)))
