"""Invalid-action masks: which actions are legal in each state, read and checked at the env boundary.

An env gives its mask in one of two ways, looked for in this order:

- ``info["action_mask"]`` on reset and step (gymnasium's convention, Taxi's): a vector env merges it
  into ``infos["action_mask"]`` ``(N, A)`` with ``infos["_action_mask"]`` ``(N,)`` saying which envs gave one;
- an ``action_masks()`` method (sb3-contrib's ``MaskablePPO`` convention), called after each step.

Both describe the observation the env just returned: after a step, the mask of ``S_{t+1}``; on
the step that only resets an env (next-step autoreset), the mask of the new episode's first
observation, which the same step returns. So the mask always belongs to the observation beside it.

A mask is a bool array ``(N, A)``, True where the action is legal. A state with no legal action is
an error unless it is terminal (its bootstrap is masked by ``terminated`` anyway, and whatever
the loop acts there is ignored by the autoreset); a mask of the wrong shape or dtype is an error
naming the step and the env. ``config.action_mask``: ``auto`` uses a mask when the env gives
one, ``on`` requires one, ``off`` ignores it.

Shapes: ``N`` envs, ``A`` actions.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

INFO_KEY = "action_mask"
METHOD = "action_masks"
SOURCES = ("info", "method")


def find_source(envs: gym.vector.VectorEnv | gym.Env, infos: dict[str, Any]) -> str | None:
    """Where the env gives its mask (``"info"`` or ``"method"``), judged from its reset ``infos``; ``None``: nowhere."""
    if INFO_KEY in infos:
        return "info"
    try:
        if isinstance(envs, gym.vector.VectorEnv):
            envs.call(METHOD)  # type: ignore[attr-defined]
        else:
            envs.get_wrapper_attr(METHOD)()
    except (AttributeError, NotImplementedError):  # no such method (EnvPool's envs have no call at all)
        return None
    return "method"


def resolve_source(mode: str, source: str | None, env_id: str) -> str | None:
    """The source a run uses under ``config.action_mask`` ``mode``: ``None`` for ``off`` or an env without masks.

    Raises:
        ValueError: for ``on`` with an env that gives no mask.
    """
    if mode == "off":
        return None
    if mode == "on" and source is None:
        raise ValueError(
            f"action_mask is 'on' but {env_id} gives no action mask: expected info['action_mask'] on reset "
            "and step, or an action_masks() method"
        )
    return source


def check_mask(mask: Any, n_actions: int, rows: int, *, where: str) -> np.ndarray:
    """``mask`` as bool ``(rows, A)``, or a ``ValueError`` saying what was expected; ``where`` names step and env."""
    array = np.asarray(mask)
    if array.shape != (rows, n_actions):
        raise ValueError(f"{where}: expected an action mask of shape {(rows, n_actions)}, got {array.shape}")
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.integer) or ((array != 0) & (array != 1)).any():
        raise ValueError(f"{where}: expected an action mask of bools or 0/1 integers, got dtype {array.dtype}")
    return array.astype(bool)


def check_legal(mask_NA: np.ndarray, terminated_N: np.ndarray | None, *, where: str) -> None:
    """Raise unless every non-terminal state has a legal action (``terminated_N`` None: none is terminal)."""
    empty_N = ~mask_NA.any(axis=1)
    if terminated_N is not None:
        empty_N &= ~np.asarray(terminated_N, dtype=bool)
    if empty_N.any():
        raise ValueError(f"{where}, env {int(np.argmax(empty_N))}: a non-terminal state with no legal action")


def run_masks(mode: str, env_id: str, envs: gym.vector.VectorEnv, infos: dict[str, Any]) -> VectorMasks | None:
    """The masks a run over ``envs`` uses under ``config.action_mask`` ``mode``, judged from a reset's ``infos``."""
    source = resolve_source(mode, find_source(envs, infos), env_id)
    n_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    return None if source is None else VectorMasks(source, env_id, n_actions)


class VectorMasks:
    """Reads and checks the masks of ``N`` vector envs of ``env_id`` from ``source`` (:func:`find_source`)."""

    def __init__(self, source: str, env_id: str, n_actions: int) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown action mask source {source!r}; expected one of {', '.join(SOURCES)}")
        self.source, self.env_id, self.n_actions = source, env_id, n_actions

    def read(
        self, envs: gym.vector.VectorEnv, infos: dict[str, Any], step: int, terminated_N: np.ndarray | None = None
    ) -> np.ndarray:
        """The mask ``(N, A)`` of the observations the envs just returned (at env step ``step``)."""
        where = f"{self.env_id} at env step {step}"
        rows = envs.num_envs
        if self.source == "info":
            if INFO_KEY not in infos or not np.all(infos.get("_" + INFO_KEY, True)):
                given = infos.get("_" + INFO_KEY)
                env = 0 if given is None else int(np.argmin(given))
                raise ValueError(f"{where}, env {env}: info['{INFO_KEY}'] is missing (it was given on reset)")
            mask = infos[INFO_KEY]
        else:
            mask = np.stack([np.asarray(m) for m in envs.call(METHOD)])  # type: ignore[attr-defined]
        mask_NA = check_mask(mask, self.n_actions, rows, where=where)
        check_legal(mask_NA, terminated_N, where=where)
        return mask_NA


def env_mask(env: gym.Env, info: dict[str, Any], source: str, n_actions: int, *, where: str) -> np.ndarray:
    """The mask ``(A,)`` of a single env's last observation (evaluation), checked."""
    mask = info.get(INFO_KEY) if source == "info" else env.get_wrapper_attr(METHOD)()
    if mask is None:
        raise ValueError(f"{where}: info['{INFO_KEY}'] is missing (it was given on reset)")
    return check_mask(np.asarray(mask)[None], n_actions, 1, where=where)[0]
