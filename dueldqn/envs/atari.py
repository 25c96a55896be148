"""Atari 2600 environments with the DQN preprocessing (Mnih et al., 2015; Machado et al., 2018).

Shape suffixes as in :mod:`dueldqn.networks`: ``N`` parallel envs, ``C`` stacked frames,
``H`` / ``W`` frame height and width. Every env here returns ``(4, 84, 84)`` ``uint8`` frames
(``(N, 4, 84, 84)`` for a vector env), never scaled: the agent scales a sampled batch with
:func:`dueldqn.networks.preprocess_frames`.

One agent step is four emulator frames with the same action; the observation is the
pixel-wise maximum of the last two of them (flicker removal), converted to grey, resized to
84x84 and stacked with the three previous ones. Each game starts with 1-30 random no-ops, and
with FIRE for the games that need it to start. Training envs also end an "episode" at every
lost life (the game itself goes on) and clip rewards to their sign; evaluation envs play the
whole game, unclipped, for at most 108,000 frames (30 minutes at 60 Hz, 27,000 agent steps).

Sticky actions: the Nature DQN and Dueling DQN papers (Mnih et al., 2015; Wang et al., 2016)
played a deterministic emulator, made stochastic only by the no-op starts; sticky actions
(repeat the previous action with probability 0.25, the gymnasium ``-v5`` default) came later
with Machado et al. (2018). The default here is therefore ``repeat_action_probability=0.0``;
pass ``0.25`` for the Machado et al. protocol (what CleanRL gets from the ``-v5`` defaults).

Every env reports the score of the whole game, as gymnasium's ``RecordEpisodeStatistics``
does: ``info["episode"] = {"r": return, "l": length, "t": seconds}`` on the step where a game
(not a life) ends, with the raw, unclipped reward summed over all lives. In a vector env it is
``infos["episode"]["r"]`` of shape ``(N,)`` with ``infos["_episode"]`` marking the envs whose
game ended on this step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dueldqn.envs import MissingDependency
from dueldqn.networks import FRAME_SIZE, FRAME_STACK

FRAME_SKIP = 4
NOOP_MAX = 30
MAX_EPISODE_FRAMES = 108_000  # 30 minutes of play at 60 frames per second
PAPER_REPEAT_ACTION_PROBABILITY = 0.0  # no sticky actions, as in Mnih et al. (2015) and Wang et al. (2016)
BACKENDS = ("gymnasium", "envpool")

_ATARI_HINT = "expected an ALE id such as 'ALE/Breakout-v5'"


def _register_ale() -> None:
    """Register the ``ALE/...`` ids with gymnasium (ale-py ships the ROMs)."""
    try:
        import ale_py
    except ImportError as e:
        raise MissingDependency('Atari environments need ale-py; install it with `pip install "dueldqn[atari]"`') from e
    gym.register_envs(ale_py)


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` is an Atari id registered by ale-py, such as ``"ALE/Breakout-v5"``.

    Without ale-py installed this only checks the ``ALE/`` prefix, so that the caller still
    routes the id to :func:`make_atari_env`, which then says how to install ale-py.
    """
    if not env_id.startswith("ALE/"):
        return False
    try:
        _register_ale()
    except ImportError:
        return True
    return env_id in gym.registry


def _check_atari_id(env_id: str) -> None:
    """Raise a ``ValueError`` naming an example when ``env_id`` is not a registered ALE id."""
    if not env_id.startswith("ALE/"):
        raise ValueError(f"unknown Atari env id {env_id!r}: {_ATARI_HINT}")
    _register_ale()
    if env_id not in gym.registry:
        raise ValueError(f"unknown Atari env id {env_id!r} (not registered by ale-py): {_ATARI_HINT}")


def _sign_reward(reward: SupportsFloat) -> float:
    """Clip a reward to its sign, ``sign(r)`` in {-1, 0, 1} (Mnih et al., 2015)."""
    return float(np.sign(float(reward)))


class EpisodicLifeEnv(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """End an episode at every lost life, but reset the emulator only when the game is over.

    A lost life gives ``terminated=True`` (the value of that state is not bootstrapped,
    Mnih et al., 2015); the following :meth:`reset` then goes on with the same game after one
    no-op step, so the agent sees every life of a game, with the score and the difficulty it
    has reached. Any other reset (game over, time-limit truncation, or a reset the caller asks
    for in the middle of a life) resets the emulator.

    Why not gymnasium's own option: in gymnasium 1.4, ``AtariPreprocessing(terminal_on_life_loss=True)``
    signals ``terminated`` on a lost life, but its ``reset`` always resets the emulator: every
    life would restart the game from its first screen, and the agent would never see a later
    life. This wrapper is the classic ``EpisodicLifeEnv`` of OpenAI Baselines.
    """

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        self.lives = 0
        self.life_lost = False  # the last step lost a life and the game goes on

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the game; ``terminated`` is also True when a life was lost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale_lives()
        self.life_lost = 0 < lives < self.lives and not (terminated or truncated)
        terminated = terminated or self.life_lost
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """After a lost life take one no-op step; otherwise (game over, first call) reset the emulator."""
        if not self.life_lost or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the game ended during the no-op: a real reset after all
                episode = info.get("episode")
                obs, info = self.env.reset(options=options)
                if episode is not None:  # keep the finished game's score for the caller
                    info["episode"] = episode
        self.lives = self._ale_lives()
        self.life_lost = False
        return obs, info


class FireResetEnv(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """Press FIRE (then action 2) on reset, for games that wait for FIRE to start.

    Breakout, for one, does nothing until FIRE launches the ball; without it an agent can spend
    a whole episode waiting. Placed above :class:`EpisodicLifeEnv`, it also fires at the start of
    every life. This is OpenAI Baselines' ``FireResetEnv``; gymnasium 1.4 has no equivalent.
    The rewards of these two steps are not returned (the episode statistics below count them).
    """

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireResetEnv needs action 1 to be FIRE and 3+ actions, got {meanings}")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset, then step FIRE and action 2, resetting again if either ends the episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info


def make_atari_env(
    env_id: str,
    *,
    seed: int,
    training: bool,
    max_episode_frames: int = MAX_EPISODE_FRAMES,
    noop_max: int = NOOP_MAX,
    repeat_action_probability: float = PAPER_REPEAT_ACTION_PROBABILITY,
    render_mode: str | None = None,
) -> gym.Env:
    """One Atari env with the DQN preprocessing; observations ``(4, 84, 84)`` ``uint8``.

    The wrappers, innermost first (gymnasium's own where it has one):

    1. ``gym.make(env_id, frameskip=1, ...)``: the raw emulator, minimal action set, truncated
       after ``max_episode_frames`` emulator frames (no-op frames included).
    2. ``AtariPreprocessing``: 1 to ``noop_max`` random no-ops on reset, 4 frames per step,
       max over the last two, grey, 84x84 (``cv2.INTER_AREA``), unscaled ``uint8``. Its
       ``terminal_on_life_loss`` stays off (see :class:`EpisodicLifeEnv` for why).
    3. ``RecordEpisodeStatistics``: sits below the life and reward wrappers, so ``"r"`` is the
       raw score of the whole game and ``"l"`` counts every agent step the game took, with the
       FIRE and no-op steps the wrappers below take at the start of a life.
    4. :class:`EpisodicLifeEnv` (training only): ``terminated`` at every lost life.
    5. :class:`FireResetEnv` for games whose action 1 is FIRE.
    6. ``TransformReward(sign)`` (training only): rewards clipped to {-1, 0, 1}.
    7. ``FrameStackObservation(4)``: its default ``padding_type="reset"`` fills the stack of a
       reset with four copies of the first frame.

    Args:
        env_id: an ale-py id such as ``"ALE/Breakout-v5"``.
        seed: seeds the emulator, the no-op starts and the action space (the env is reset once
            here with it, so the caller's first plain ``reset()`` is reproducible).
        training: life loss ends the episode and rewards are clipped; ``False`` gives the
            evaluation protocol (whole games, raw score, no-op starts, 108k-frame cap).
        max_episode_frames: emulator frames after which a game is truncated.
        noop_max: most random no-ops at the start of a game (0 turns no-op starts off).
        repeat_action_probability: sticky-action probability; 0.0 as in the DQN papers.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` for videos of the full-colour screen).

    Raises:
        ValueError: for an id that ale-py does not register.
        ImportError: without ale-py or opencv (``pip install "dueldqn[atari]"``).
    """
    _check_atari_id(env_id)
    env: gym.Env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=False,
        max_num_frames_per_episode=max_episode_frames,
        render_mode=render_mode,
    )
    action_meanings: list[str] = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    try:
        env = gym.wrappers.AtariPreprocessing(
            env,
            noop_max=noop_max,
            frame_skip=FRAME_SKIP,
            screen_size=FRAME_SIZE,
            terminal_on_life_loss=False,
            grayscale_obs=True,
            scale_obs=False,
        )
    except gym.error.DependencyNotInstalled as e:
        hint = 'Atari preprocessing needs opencv; install it with `pip install "dueldqn[atari]"`'
        raise MissingDependency(hint) from e
    # AtariPreprocessing returns the previous step's frame when the game ends inside a 4-frame
    # step. Harmless at a game over (not bootstrapped); at the 108k-frame truncation the target
    # bootstraps from a frame one agent step old.
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if training:
        env = EpisodicLifeEnv(env)
    if len(action_meanings) >= 3 and action_meanings[1] == "FIRE":  # FIRE is 1 whenever a game has it
        env = FireResetEnv(env)
    if training:
        env = gym.wrappers.TransformReward(env, _sign_reward)
    env = gym.wrappers.FrameStackObservation(env, stack_size=FRAME_STACK)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    return env


def make_atari_vec_env(
    env_id: str,
    *,
    num_envs: int,
    seed: int,
    backend: str = "gymnasium",
    max_episode_frames: int = MAX_EPISODE_FRAMES,
    noop_max: int = NOOP_MAX,
    repeat_action_probability: float = PAPER_REPEAT_ACTION_PROBABILITY,
) -> gym.vector.VectorEnv:
    """``num_envs`` training envs stepped together; observations ``(N, 4, 84, 84)`` ``uint8``.

    Both backends give the gymnasium 1.x vector API with next-step autoreset: the step after an
    env's episode ended (``terminated`` or ``truncated``) only resets it, ignores its action and
    returns its first observation with reward 0. Rewards are clipped, a lost life terminates
    the episode, and ``infos["episode"]`` / ``infos["_episode"]`` report the raw score and
    length of every finished game.

    Args:
        env_id: an ale-py id such as ``"ALE/Breakout-v5"``.
        num_envs: number of parallel envs ``N``.
        seed: env ``i`` is seeded with ``seed + i`` (EnvPool derives its envs' seeds from ``seed``).
        backend: ``"gymnasium"`` (a ``SyncVectorEnv`` of :func:`make_atari_env`) or
            ``"envpool"`` (EnvPool's C++ Atari envs behind :class:`EnvPoolAtariVectorEnv`).
        max_episode_frames: emulator frames after which a game is truncated (EnvPool counts
            agent steps, ``max_episode_frames // 4``, without the no-op start).
        noop_max: most random no-ops at the start of a game.
        repeat_action_probability: sticky-action probability; 0.0 as in the DQN papers.

    Raises:
        ValueError: for an unknown id or backend, or ``num_envs < 1``.
        ImportError: when the backend's package is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown Atari backend {backend!r}, expected one of {BACKENDS}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    _check_atari_id(env_id)
    if backend == "envpool":
        return EnvPoolAtariVectorEnv(
            env_id,
            num_envs=num_envs,
            seed=seed,
            max_episode_frames=max_episode_frames,
            noop_max=noop_max,
            repeat_action_probability=repeat_action_probability,
        )
    return gym.vector.SyncVectorEnv(
        [
            _env_factory(
                env_id,
                seed=seed + i,
                max_episode_frames=max_episode_frames,
                noop_max=noop_max,
                repeat_action_probability=repeat_action_probability,
            )
            for i in range(num_envs)
        ],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


def _env_factory(
    env_id: str, *, seed: int, max_episode_frames: int, noop_max: int, repeat_action_probability: float
) -> Callable[[], gym.Env]:
    """A thunk building one training env, as ``SyncVectorEnv`` wants."""

    def make() -> gym.Env:
        return make_atari_env(
            env_id,
            seed=seed,
            training=True,
            max_episode_frames=max_episode_frames,
            noop_max=noop_max,
            repeat_action_probability=repeat_action_probability,
        )

    return make


def envpool_task_id(env_id: str) -> str:
    """EnvPool's name for an ale-py id: ``"ALE/Breakout-v5"`` -> ``"Breakout-v5"``."""
    _check_atari_id(env_id)
    return env_id.removeprefix("ALE/")


class EnvPoolAtariVectorEnv(gym.vector.VectorEnv):
    """EnvPool's Atari envs behind the exact gymnasium 1.x ``VectorEnv`` API of ``SyncVectorEnv``.

    EnvPool (Weng et al., 2022) steps the emulators in C++ threads with the same preprocessing
    (4-frame skip with max-pooling, grey 84x84 ``INTER_AREA``, 1-30 no-ops, FIRE on reset, a
    terminal at every lost life, sign-clipped rewards, 4 stacked frames). This adapter:

    * returns ``obs (N, 4, 84, 84) uint8``, ``rewards (N,) float64``, ``terminated`` and
      ``truncated`` ``(N,) bool`` and an ``infos`` dict, with batched ``observation_space`` /
      ``action_space`` (EnvPool reports the single-env spaces there);
    * keeps EnvPool's next-step autoreset, the same as ``SyncVectorEnv``'s default;
    * adds ``infos["episode"]`` (``"r"``, ``"l"``, ``"t"`` with masks ``"_r"``...) and
      ``infos["_episode"]`` on the step where a game ends, from EnvPool's raw reward
      (``info["reward"]``) summed over all lives, and its real game over
      (``info["terminated"]``) or time-limit truncation. ``"l"`` counts agent steps, not the
      reset steps after a lost life (EnvPool's ``elapsed_step``).

    Differences from the gymnasium backend, inherent to EnvPool: after a lost life the frame
    stack goes on from the previous frames instead of being refilled with the new first frame,
    and the time limit counts agent steps without the no-op start. EnvPool derives every env's
    seed from ``seed`` when the envs are built; ``reset(seed=...)`` cannot reseed them.
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
    ) -> None:
        try:
            import envpool
        except ImportError as e:
            raise MissingDependency(
                'the envpool backend needs EnvPool; install it with `pip install "dueldqn[envpool]"`'
            ) from e
        task_id = envpool_task_id(env_id)
        if task_id not in envpool.list_all_envs():
            raise ValueError(f"EnvPool has no Atari task {task_id!r} (for {env_id!r}): {_ATARI_HINT}")
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
            use_fire_reset=True,
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
