"""Atari 2600 environments with the DQN preprocessing and the Atari 100k protocol.

Shape suffixes as in :mod:`dueldqn.networks`: ``N`` parallel envs, ``C`` stacked frames,
``H`` / ``W`` frame height and width. Every env here returns ``(4, 84, 84)`` ``uint8`` frames
(``(N, 4, 84, 84)`` for a vector env), never scaled: the agent scales a sampled batch with
:func:`dueldqn.networks.preprocess_frames`.

The protocol is the one Dopamine's ``DataEfficientAtariRunner`` runs for Atari 100k (Kaiser et
al., 2019; Agarwal et al., 2021), which is also the Nature DQN's (Mnih et al., 2015):

* one agent step is four emulator frames with the same action; the observation is the
  pixel-wise maximum of the last two (flicker removal), grey, 84x84, stacked with the three
  previous ones;
* no sticky actions (``repeat_action_probability=0``; gymnasium's ``-v5`` default is 0.25,
  Machado et al., 2018) and no FIRE on reset: the agent presses FIRE itself, as in Dopamine
  (``fire_reset=True`` gives OpenAI Baselines' ``FireResetEnv``);
* every game starts with ``k ~ U{0, ..., noop_max - 1}`` no-op agent steps (Dopamine:
  ``jax.random.randint(rng, (), 0, max_noops)`` with ``max_noops=30``), not counted in the
  game's length;
* a game is truncated after ``max_episode_frames // 4 = 27,000`` agent steps after its no-op
  start (108,000 frames, 30 minutes at 60 Hz), as Dopamine's ``cum_length`` and EnvPool's
  ``max_episode_steps`` count;
* training envs end an "episode" at every lost life (the game goes on) and clip rewards to
  their sign; evaluation envs play whole games with the raw score.

Every env reports the score of the whole game, as gymnasium's ``RecordEpisodeStatistics``
does: ``info["episode"] = {"r": return, "l": length, "t": seconds}`` on the step where a game
(not a life) ends, with the raw, unclipped reward summed over all lives. In a vector env it is
``infos["episode"]["r"]`` of shape ``(N,)`` with ``infos["_episode"]`` marking the envs whose
game ended on this step.

The gymnasium backend's envs can be saved and restored exactly (:mod:`dueldqn.envs.atari_state`);
EnvPool's cannot (:mod:`dueldqn.envs.envpool_atari`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dueldqn.atari_protocol import (
    ATARI_HINT,
    FRAME_SIZE,
    FRAME_SKIP,
    FRAME_STACK,
    MAX_EPISODE_FRAMES,
    NOOP_MAX,
    PAPER_FIRE_RESET,
    PAPER_REPEAT_ACTION_PROBABILITY,
    is_atari,
)
from dueldqn.config import BACKENDS
from dueldqn.envs.errors import MissingDependency


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
    if not is_atari(env_id):
        return False
    try:
        _register_ale()
    except ImportError:
        return True
    return env_id in gym.registry


def _check_atari_id(env_id: str) -> None:
    """Raise a ``ValueError`` naming an example when ``env_id`` is not a registered ALE id."""
    if not is_atari(env_id):
        raise ValueError(f"unknown Atari env id {env_id!r}: {ATARI_HINT}")
    _register_ale()
    if env_id not in gym.registry:
        raise ValueError(f"unknown Atari env id {env_id!r} (not registered by ale-py): {ATARI_HINT}")


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


class NoopStartEnv(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """Start every game with ``k ~ U{0, ..., noop_max - 1}`` no-op agent steps (Dopamine's Atari 100k runner).

    Dopamine's ``DataEfficientAtariRunner._initialize_episode`` steps its preprocessed env (four
    frames a step) with action 0 that many times after each game's reset, skipping the rewards
    and not counting the steps; a game that ends during them is reset. ``k`` is drawn from the
    env's own generator (``env.unwrapped.np_random``), which a checkpoint saves. gymnasium's
    ``AtariPreprocessing(noop_max=n)`` instead plays 1 to ``n`` single frames.
    """

    def __init__(self, env: gym.Env[np.ndarray, int], noop_max: int) -> None:
        super().__init__(env)
        if noop_max < 0:
            raise ValueError(f"noop_max must be 0 or more, got {noop_max}")
        self.noop_max = noop_max

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset, then take the random number of no-op steps."""
        obs, info = self.env.reset(seed=seed, options=options)
        noops = int(self.env.unwrapped.np_random.integers(0, self.noop_max)) if self.noop_max > 1 else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
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
    fire_reset: bool = PAPER_FIRE_RESET,
    render_mode: str | None = None,
) -> gym.Env:
    """One Atari env with the DQN preprocessing and the Atari 100k protocol; observations ``(4, 84, 84)`` ``uint8``.

    The wrappers, innermost first (gymnasium's own where it has one):

    1. ``gym.make(env_id, frameskip=1, ...)``: the raw emulator, minimal action set, no frame limit.
    2. :class:`~dueldqn.envs.atari_state.AleReplayLog`: keeps the emulator state of the game's
       reset and the frames' actions since, for exact resume (:mod:`dueldqn.envs.atari_state`).
    3. ``AtariPreprocessing``: 4 frames per step, max over the last two, grey, 84x84
       (``cv2.INTER_AREA``), unscaled ``uint8``; its own no-ops and ``terminal_on_life_loss``
       off (see :class:`NoopStartEnv` and :class:`EpisodicLifeEnv` for why).
    4. :class:`NoopStartEnv`: 0 to ``noop_max - 1`` no-op agent steps at the start of a game.
    5. ``TimeLimit(max_episode_frames // 4)``: counts agent steps after the no-op start.
    6. ``RecordEpisodeStatistics``: sits below the life and reward wrappers, so ``"r"`` is the
       raw score of the whole game and ``"l"`` counts its agent steps after the no-op start,
       with the no-op step :class:`EpisodicLifeEnv` takes after a lost life.
    7. :class:`EpisodicLifeEnv` (training only): ``terminated`` at every lost life.
    8. :class:`FireResetEnv` (``fire_reset=True`` only) for games whose action 1 is FIRE.
    9. ``TransformReward(sign)`` (training only): rewards clipped to {-1, 0, 1}.
    10. ``FrameStackObservation(4)``: its default ``padding_type="reset"`` fills the stack of a
        reset with four copies of the first frame.

    Args:
        env_id: an ale-py id such as ``"ALE/Breakout-v5"``.
        seed: seeds the emulator, the no-op starts and the action space (the env is reset once
            here with it, so the caller's first plain ``reset()`` is reproducible).
        training: life loss ends the episode and rewards are clipped; ``False`` gives the
            evaluation protocol (whole games, raw score, no-op starts, 27k-step cap).
        max_episode_frames: a game is truncated after ``max_episode_frames // 4`` agent steps.
        noop_max: a game starts with 0 to ``noop_max - 1`` no-op agent steps (0 or 1: none).
        repeat_action_probability: sticky-action probability; 0.0 as in the DQN papers.
        fire_reset: press FIRE (and action 2) after every reset, as OpenAI Baselines does;
            ``False`` (the protocol) leaves FIRE to the agent.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` for videos of the full-colour screen).

    Raises:
        ValueError: for an id that ale-py does not register, or ``max_episode_frames < 4``.
        ImportError: without ale-py or opencv (``pip install "dueldqn[atari]"``).
    """
    from dueldqn.envs.atari_state import AleReplayLog

    _check_atari_id(env_id)
    if max_episode_frames < FRAME_SKIP:
        raise ValueError(f"max_episode_frames must be at least {FRAME_SKIP} (one agent step), got {max_episode_frames}")
    env: gym.Env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=False,
        max_num_frames_per_episode=0,  # no limit here: TimeLimit below counts agent steps after the no-ops
        render_mode=render_mode,
    )
    action_meanings: list[str] = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    env = AleReplayLog(env)
    try:
        env = gym.wrappers.AtariPreprocessing(
            env,
            noop_max=0,
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
    # step. Harmless at a game over (not bootstrapped).
    env = NoopStartEnv(env, noop_max)
    env = gym.wrappers.TimeLimit(env, max_episode_frames // FRAME_SKIP)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if training:
        env = EpisodicLifeEnv(env)
    if fire_reset and len(action_meanings) >= 3 and action_meanings[1] == "FIRE":  # FIRE is 1 whenever a game has it
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
    fire_reset: bool = PAPER_FIRE_RESET,
    training: bool = True,
) -> gym.vector.VectorEnv:
    """``num_envs`` Atari envs stepped together; observations ``(N, 4, 84, 84)`` ``uint8``.

    Both backends give the gymnasium 1.x vector API with next-step autoreset: the step after an
    env's episode ended (``terminated`` or ``truncated``) only resets it, ignores its action and
    returns its first observation with reward 0. ``infos["episode"]`` / ``infos["_episode"]``
    report the raw score and length of every finished game. Training envs (the default) clip
    rewards and end an episode at every lost life; ``training=False`` gives evaluation envs
    (gymnasium backend only).

    Args:
        env_id: an ale-py id such as ``"ALE/Breakout-v5"``.
        num_envs: number of parallel envs ``N``.
        seed: env ``i`` is seeded with ``seed + i`` (EnvPool derives its envs' seeds from ``seed``).
        backend: ``"gymnasium"`` (a ``SyncVectorEnv`` of :func:`make_atari_env`, exactly
            resumable) or ``"envpool"`` (EnvPool's C++ Atari envs behind
            :class:`~dueldqn.envs.envpool_atari.EnvPoolAtariVectorEnv`).
        max_episode_frames: a game is truncated after ``max_episode_frames // 4`` agent steps.
        noop_max: gymnasium: 0 to ``noop_max - 1`` no-op agent steps at the start of a game;
            EnvPool: 1 to ``noop_max`` no-op frames at every reset, lives included (its C++).
        repeat_action_probability: sticky-action probability; 0.0 as in the DQN papers.
        fire_reset: FIRE after a reset (both backends); ``False`` is the protocol.
        training: training envs (life loss terminal, clipped rewards) or evaluation envs.

    Raises:
        ValueError: for an unknown id or backend, ``num_envs < 1``, or evaluation envs on EnvPool.
        ImportError: when the backend's package is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown Atari backend {backend!r}, expected one of {BACKENDS}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    _check_atari_id(env_id)
    if backend == "envpool":
        if not training:
            raise ValueError("evaluation envs are gymnasium envs; use backend 'gymnasium' for them")
        from dueldqn.envs.envpool_atari import EnvPoolAtariVectorEnv

        return EnvPoolAtariVectorEnv(
            env_id,
            num_envs=num_envs,
            seed=seed,
            max_episode_frames=max_episode_frames,
            noop_max=noop_max,
            repeat_action_probability=repeat_action_probability,
            fire_reset=fire_reset,
        )
    settings = {
        "max_episode_frames": max_episode_frames,
        "noop_max": noop_max,
        "fire_reset": fire_reset,
        "repeat_action_probability": repeat_action_probability,
        "training": training,
    }
    return gym.vector.SyncVectorEnv(
        [_env_factory(env_id, seed=seed + i, settings=settings) for i in range(num_envs)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


def _env_factory(env_id: str, *, seed: int, settings: dict[str, Any]) -> Callable[[], gym.Env]:
    """A thunk building one env, as ``SyncVectorEnv`` wants."""

    def make() -> gym.Env:
        return make_atari_env(env_id, seed=seed, **settings)

    return make
