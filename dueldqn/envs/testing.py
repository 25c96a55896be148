"""Small envs with invalid actions, for tests: an illegal action that reaches them raises.

``MaskedCorridor``: positions ``0 .. L-1`` (a Discrete observation), start at 0, goal at ``L - 1``
(reward +1, terminated), -0.01 a step otherwise. Actions: 0 left (illegal at 0), 1 right,
2 jump two ahead (legal on even positions short of the last two), 3 wait (never legal). The goal
state has no legal action. Its mask comes in ``info["action_mask"]`` (int8, as Taxi's);
``MaskMethodCorridor`` gives it through ``action_masks()`` instead (sb3-contrib's convention).
``bad`` breaks the mask for error tests: ``"shape"`` (one entry short), ``"float"`` (float dtype),
``"stuck"`` (no legal action at position 2, which is not terminal).

Import this module (or make ``"dueldqn.envs.testing:MaskedCorridor-v0"``, which gymnasium
imports first, as a Ray worker must) to register the ids.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class IllegalAction(ValueError):
    """An action the env's mask forbids reached the env."""


class MaskedCorridor(gym.Env[np.int64, np.int64]):
    """A corridor whose illegal actions raise; the legal ones of each state in ``info["action_mask"]``."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(self, length: int = 6, bad: str = "", render_mode: str | None = None) -> None:
        self.length, self.bad = length, bad
        self.observation_space = gym.spaces.Discrete(length)
        self.action_space = gym.spaces.Discrete(4)
        self.position = 0

    def mask(self) -> np.ndarray:
        """The legal actions of the current position, ``(4,)`` int8."""
        p = self.position
        legal = np.array([p > 0, True, p % 2 == 0 and p + 2 < self.length - 1, False], dtype=np.int8)
        if p == self.length - 1 or (self.bad == "stuck" and p == 2):
            legal[:] = 0
        if self.bad == "shape":
            return legal[:-1]
        return legal.astype(np.float32) if self.bad == "float" else legal

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self.mask()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.position = 0
        return np.int64(self.position), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        action = int(action)
        legal = self.mask()
        if self.bad == "" and not legal[action]:
            raise IllegalAction(f"action {action} is illegal at position {self.position} (mask {legal.tolist()})")
        self.position += {0: -1, 1: 1, 2: 2, 3: 0}[action]
        terminated = self.position == self.length - 1
        return np.int64(self.position), 1.0 if terminated else -0.01, terminated, False, self._info()


class MaskMethodCorridor(MaskedCorridor):
    """:class:`MaskedCorridor` with its mask from ``action_masks()`` (bool), none in ``info``."""

    def action_masks(self) -> np.ndarray:
        """The legal actions of the current position, ``(4,)`` bool."""
        return self.mask().astype(bool)

    def _info(self) -> dict[str, Any]:
        return {}


def register() -> None:
    """Register the ids (idempotent)."""
    ids = {
        "MaskedCorridor-v0": ("MaskedCorridor", {}),
        "MaskMethodCorridor-v0": ("MaskMethodCorridor", {}),
        "MaskedCorridorBadShape-v0": ("MaskedCorridor", {"bad": "shape"}),
        "MaskedCorridorFloat-v0": ("MaskedCorridor", {"bad": "float"}),
        "MaskedCorridorStuck-v0": ("MaskedCorridor", {"bad": "stuck"}),
    }
    for env_id, (cls, kwargs) in ids.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{__name__}:{cls}", max_episode_steps=50, kwargs=kwargs)


register()
