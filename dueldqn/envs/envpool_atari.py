"""EnvPool's C++ Atari envs (Weng et al., 2022) behind gymnasium's ``VectorEnv`` API.

EnvPool has no emulator state API (no clone or restore of its ALE instances, no access to its
no-op generator), so a resumed run on this backend starts new games; bit-exact Atari resume
needs the gymnasium backend (:mod:`dueldqn.envs.atari_state`).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dueldqn.atari_protocol import (
    ATARI_HINT,
    ATARI_PREFIX,
    FRAME_SIZE,
    FRAME_SKIP,
    FRAME_STACK,
    MAX_EPISODE_FRAMES,
    NOOP_MAX,
    PAPER_FIRE_RESET,
    PAPER_REPEAT_ACTION_PROBABILITY,
    is_atari,
)
from dueldqn.envs.errors import MissingDependency


def envpool_task_id(env_id: str) -> str:
    """EnvPool's name for an ale-py id: ``"ALE/Breakout-v5"`` -> ``"Breakout-v5"``.

    Whether EnvPool has the game is for :class:`EnvPoolAtariVectorEnv` to check (``envpool.list_all_envs``).
    """
    if not is_atari(env_id):
        raise ValueError(f"unknown Atari env id {env_id!r}: {ATARI_HINT}")
    return env_id.removeprefix(ATARI_PREFIX)


class EnvPoolAtariVectorEnv(gym.vector.VectorEnv):
    """EnvPool's Atari envs behind the exact gymnasium 1.x ``VectorEnv`` API of ``SyncVectorEnv``.

    EnvPool (Weng et al., 2022) steps the emulators in C++ threads with the same preprocessing
    (4-frame skip with max-pooling, grey 84x84 ``INTER_AREA``, a terminal at every lost life,
    sign-clipped rewards, 4 stacked frames, no sticky actions, a 27,000-step cap after the
    no-ops). FIRE on reset is off, as in the protocol (EnvPool's own default is on). This adapter:

    * returns ``obs (N, 4, 84, 84) uint8``, ``rewards (N,) float64``, ``terminated`` and
      ``truncated`` ``(N,) bool`` and an ``infos`` dict, with batched ``observation_space`` /
      ``action_space`` (EnvPool reports the single-env spaces there);
    * keeps EnvPool's next-step autoreset, the same as ``SyncVectorEnv``'s default;
    * adds ``infos["episode"]`` (``"r"``, ``"l"``, ``"t"`` with masks ``"_r"``...) and
      ``infos["_episode"]`` on the step where a game ends, from EnvPool's raw reward
      (``info["reward"]``) summed over all lives, and its real game over
      (``info["terminated"]``) or time-limit truncation. ``"l"`` counts agent steps, not the
      reset steps after a lost life (EnvPool's ``elapsed_step``).

    Differences from the gymnasium backend, inherent to EnvPool's C++ (``atari_env.h``):

    * its no-op start is 1 to ``noop_max`` single frames (``dist_noop_(0, noop_max - 1) + 1``),
      not Dopamine's 0 to 29 agent steps, and it also runs at the reset after every lost life;
    * after a lost life the frame stack goes on from the previous frames instead of being
      refilled with the new first frame;
    * no state API: a resumed run starts new games.

    With the same actions and no random no-ops both backends give the same frames until the
    first lost life (``tests/test_atari.py``). EnvPool derives every env's seed from ``seed``
    when the envs are built; ``reset(seed=...)`` cannot reseed them.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int,
        seed: int,
        max_episode_frames: int = MAX_EPISODE_FRAMES,
        noop_max: int = NOOP_MAX,
        repeat_action_probability: float = PAPER_REPEAT_ACTION_PROBABILITY,
        fire_reset: bool = PAPER_FIRE_RESET,
    ) -> None:
        try:
            import envpool
        except ImportError as e:
            raise MissingDependency(
                'the envpool backend needs EnvPool; install it with `pip install "dueldqn[envpool]"`'
            ) from e
        if noop_max < 1:
            raise ValueError(f"EnvPool plays 1 to noop_max no-op frames; noop_max must be at least 1, got {noop_max}")
        task_id = envpool_task_id(env_id)
        if task_id not in envpool.list_all_envs():
            raise ValueError(f"EnvPool has no Atari task {task_id!r} (for {env_id!r}): {ATARI_HINT}")
        self._pool = envpool.make(
            task_id,
            env_type="gymnasium",
            num_envs=num_envs,
            seed=seed,
            episodic_life=True,
            reward_clip=True,
            stack_num=FRAME_STACK,
            img_height=FRAME_SIZE,
            img_width=FRAME_SIZE,
            gray_scale=True,
            frame_skip=FRAME_SKIP,
            noop_max=noop_max,
            use_fire_reset=fire_reset,
            repeat_action_probability=repeat_action_probability,
            full_action_space=False,
            max_episode_steps=max_episode_frames // FRAME_SKIP,
        )
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(0, 255, (FRAME_STACK, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
        self.single_action_space = gym.spaces.Discrete(int(self._pool.action_space.n))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.action_space.seed(seed)
        self._returns_N = np.zeros(num_envs, dtype=np.float64)
        self._lengths_N = np.zeros(num_envs, dtype=np.int64)
        self._starts_N = np.full(num_envs, time.perf_counter())
        self._autoreset_N = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; ``seed`` is ignored (EnvPool's seeds are fixed at construction)."""
        obs_N, info = self._pool.reset()
        self._returns_N[:] = 0.0
        self._lengths_N[:] = 0
        self._starts_N[:] = time.perf_counter()
        self._autoreset_N[:] = False
        return obs_N, self._lives_info(info)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; returns ``(obs_N, rewards_N, terminated_N, truncated_N, infos)``."""
        obs_N, rewards_N, terminated_N, truncated_N, info = self._pool.step(np.asarray(actions, dtype=np.int32))
        terminated_N = np.asarray(terminated_N, dtype=bool)
        truncated_N = np.asarray(truncated_N, dtype=bool)
        stepped_N = ~self._autoreset_N  # the reset step after a done is not part of a game
        self._returns_N[stepped_N] += info["reward"][stepped_N]
        self._lengths_N[stepped_N] += 1
        game_over_N = (terminated_N & np.asarray(info["terminated"], dtype=bool)) | truncated_N
        self._autoreset_N = terminated_N | truncated_N
        infos = self._lives_info(info)
        if game_over_N.any():
            now = time.perf_counter()
            infos["episode"] = {
                "r": np.where(game_over_N, self._returns_N, 0.0),
                "l": np.where(game_over_N, self._lengths_N, 0),
                "t": np.where(game_over_N, np.round(now - self._starts_N, 6), 0.0),
                "_r": game_over_N.copy(),
                "_l": game_over_N.copy(),
                "_t": game_over_N.copy(),
            }
            infos["_episode"] = game_over_N
            self._returns_N[game_over_N] = 0.0
            self._lengths_N[game_over_N] = 0
            self._starts_N[game_over_N] = now
        return obs_N, np.asarray(rewards_N, dtype=np.float64), terminated_N, truncated_N, infos

    def _lives_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """The per-env ``lives`` in gymnasium's vector-info layout (a value and a ``_`` mask)."""
        return {"lives": np.asarray(info["lives"], dtype=np.int64), "_lives": np.ones(self.num_envs, dtype=bool)}

    def close_extras(self, **kwargs: Any) -> None:
        """Stop EnvPool's threads."""
        self._pool.close()
