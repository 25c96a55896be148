"""Exact save and restore of a gymnasium Atari env's emulator (ale-py 0.12), without pickle.

ale-py serialises the emulator: ``ale.cloneState(include_rng=True).serialize()`` gives bytes and
``ale.restoreState(ale_py.ALEState(bytes))`` reads them back. Restoring the state of the moment
of the checkpoint straight into a new emulator is not exact, though: the state leaves out the
sticky "last action" and, in ale-py 0.12.1, the TIA's partial-frame flag, so the next frames of
some games (Qbert) differ (``research/replay-and-ale-state.md`` section 4). What is exact is to
restore the state cloned right after the game's reset, when every emulator's hidden state is the
same, and replay every frame's action since then. :class:`AleReplayLog` keeps both; the restore
then compares the replayed emulator's bytes with the bytes saved at the checkpoint and refuses
to go on when they differ.

The cost: one byte per emulator frame since the game's reset (at most 108 KB), about 14 KB per
state, and a replay of up to one game's frames at resume (0.1-0.2 ms a frame, seconds at most).
"""

from __future__ import annotations

import base64
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


def b64encode(data: bytes) -> str:
    """Bytes as ASCII text for JSON."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes :func:`b64encode` wrote; ``ValueError`` for anything else."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise ValueError(f"the saved Atari emulator state is not valid base64: {err}") from err


class AleReplayLog(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """Keep the emulator state of the game's last reset and the action of every frame since.

    It sits directly on ale-py's ``AtariEnv`` with ``frameskip=1``, so that one ``step`` is one
    ``ale.act`` call; every reset of the emulator (game over, time limit, the first reset)
    passes through it. :func:`ale_state` and :func:`restore_ale_state` save and rebuild it.
    """

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        if getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("AleReplayLog needs an AtariEnv with frameskip=1 (one step, one emulator frame)")
        self.ale = env.unwrapped.ale  # type: ignore[attr-defined]
        self.reset_state = b""  # serialised emulator state right after the game's reset
        self.frame_actions = bytearray()  # one action index per emulator frame since then

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the game and clone its first state (sticky last action NOOP, any emulator alike)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.reset_state = self.ale.cloneState(include_rng=True).serialize()
        self.frame_actions = bytearray()
        return obs, info

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """One emulator frame; its action is logged."""
        out = self.env.step(action)
        self.frame_actions.append(int(action))
        return out


def find_replay_log(env: gym.Env) -> AleReplayLog | None:
    """The :class:`AleReplayLog` inside ``env``'s wrappers, if any."""
    while True:
        if isinstance(env, AleReplayLog):
            return env
        if not isinstance(env, gym.Wrapper):
            return None
        env = env.env


def _identity(log: AleReplayLog) -> dict[str, Any]:
    """What must be equal for a saved state to apply: ale-py's version, the game and the settings."""
    import ale_py

    unwrapped: Any = log.unwrapped
    return {
        "ale_py": ale_py.__version__,
        "game": str(unwrapped._game),
        "env_id": unwrapped.spec.id if unwrapped.spec is not None else None,
        "mode": unwrapped._game_mode,
        "difficulty": unwrapped._game_difficulty,
        "repeat_action_probability": float(log.ale.getFloat("repeat_action_probability")),
        "n_actions": len(unwrapped._action_set),
    }


def ale_state(log: AleReplayLog) -> dict[str, Any]:
    """The emulator's progress, JSON-ready: the reset state, the frames' actions, the current state."""
    return {
        **_identity(log),
        "reset_state": b64encode(log.reset_state),
        "frame_actions": b64encode(bytes(log.frame_actions)),
        "current_state": b64encode(log.ale.cloneState(include_rng=True).serialize()),
    }


def restore_ale_state(log: AleReplayLog, saved: dict[str, Any]) -> None:
    """Rebuild the saved emulator: its reset state, then every frame's action replayed.

    Raises:
        ValueError: when the saved state is of another game, ale-py version or setting, or when
            the replayed emulator's bytes differ from those saved at the checkpoint (the resumed
            run would not be the interrupted one's continuation).
    """
    import ale_py

    expected = _identity(log)
    for key, value in expected.items():
        if saved.get(key) != value:
            raise ValueError(
                f"the saved Atari state has {key}={saved.get(key)!r} but this env has {value!r}; "
                "resume with the same game, settings and ale-py version"
            )
    reset_state, current = b64decode(saved["reset_state"]), b64decode(saved["current_state"])
    frame_actions = b64decode(saved["frame_actions"])
    action_set: Any = log.unwrapped._action_set  # type: ignore[attr-defined]
    if frame_actions and max(frame_actions) >= len(action_set):
        raise ValueError(f"the saved Atari state has an action index beyond the game's {len(action_set)} actions")
    ale = log.ale
    ale.reset_game()  # the hidden state (sticky last action) of any emulator after a reset
    ale.restoreState(ale_py.ALEState(reset_state))
    for action in frame_actions:
        ale.act(action_set[action], 1.0)
    replayed = ale.cloneState(include_rng=True).serialize()
    if replayed != current:
        raise ValueError(
            f"the Atari emulator replayed from the game's reset ({len(frame_actions)} frames) differs from the "
            f"state saved at the checkpoint ({saved['game']}); refusing to resume a run that would not be the "
            "interrupted one's continuation. The checkpoint is damaged or was written by other code."
        )
    log.reset_state, log.frame_actions = reset_state, bytearray(frame_actions)
