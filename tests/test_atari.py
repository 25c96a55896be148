"""Atari envs: frames, reward clipping, lives, FIRE on reset and full-game scores, for both backends."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ale_py", reason="Atari tests need ale-py: pip install dueldqn[atari]")
pytest.importorskip("cv2", reason="AtariPreprocessing needs opencv: pip install dueldqn[atari]")

from dueldqn.config import BACKENDS
from dueldqn.envs.atari import is_atari_id, make_atari_env, make_atari_vec_env


def _vec_env(env_id: str, backend: str, **kwargs: Any) -> gym.vector.VectorEnv:
    if backend == "envpool":
        pytest.importorskip("envpool", reason="the envpool backend needs EnvPool: pip install dueldqn[envpool]")
    return make_atari_vec_env(env_id, seed=0, backend=backend, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vec_env_gives_stacked_uint8_frames_with_next_step_autoreset(backend: str) -> None:
    envs = _vec_env("ALE/Breakout-v5", backend, num_envs=2)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert envs.observation_space.shape == (2, 4, 84, 84)
    assert envs.single_observation_space.shape == (4, 84, 84)
    assert envs.single_action_space == gym.spaces.Discrete(4)
    obs_N, _ = envs.reset()
    assert obs_N.shape == (2, 4, 84, 84) and obs_N.dtype == np.uint8
    for k in range(3):  # a reset stack repeats its first frame
        np.testing.assert_array_equal(obs_N[:, k], obs_N[:, 3])
    rng = np.random.default_rng(0)
    for _ in range(12):
        next_N, rewards_N, terminated_N, truncated_N, _ = envs.step(rng.integers(0, 4, size=2))
        assert next_N.shape == (2, 4, 84, 84) and next_N.dtype == np.uint8
        assert rewards_N.shape == (2,) and rewards_N.dtype == np.float64
        assert terminated_N.dtype == np.bool_ and truncated_N.dtype == np.bool_
        np.testing.assert_array_equal(next_N[:, :3], obs_N[:, 1:])  # one new frame per step
        assert not (terminated_N | truncated_N).any()  # no life is lost this early
        obs_N = next_N
    assert obs_N[:, 3].std() > 0  # a real screen, not a blank frame
    envs.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_vec_env_clips_rewards_ends_lives_and_reports_raw_game_scores(backend: str) -> None:
    """Space Invaders (3 lives, 5 to 30 points per alien): clipped rewards, raw score per game."""
    envs = _vec_env("ALE/SpaceInvaders-v5", backend, num_envs=2)
    envs.reset()
    rng = np.random.default_rng(0)
    autoreset_N = np.zeros(2, bool)
    positives_N, terminations_N, steps_N = np.zeros(2, int), np.zeros(2, int), np.zeros(2, int)
    games = 0
    for _ in range(1200):
        _, rewards_N, terminated_N, truncated_N, infos = envs.step(rng.integers(0, 6, size=2))
        assert set(np.unique(rewards_N)) <= {-1.0, 0.0, 1.0}
        assert not (autoreset_N & (terminated_N | (rewards_N != 0))).any()  # the reset step is empty
        live_N = ~autoreset_N
        positives_N += live_N & (rewards_N > 0)
        terminations_N += terminated_N
        steps_N += live_N
        ended_N = infos.get("_episode", np.zeros(2, bool))
        for n in np.flatnonzero(ended_N):
            assert terminated_N[n] or truncated_N[n]
            assert terminations_N[n] == 3  # one per life: two lost lives, then the game over
            assert infos["episode"]["r"][n] >= 5 * positives_N[n] > 0  # raw points, not clipped ones
            assert steps_N[n] <= infos["episode"]["l"][n] <= steps_N[n] + 10  # + FIRE / no-op steps
            positives_N[n] = terminations_N[n] = steps_N[n] = 0
            games += 1
        autoreset_N = terminated_N | truncated_N
        if games >= 2:
            break
    assert games >= 2
    envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_vec_env_truncates_at_the_frame_limit(backend: str) -> None:
    envs = _vec_env("ALE/Pong-v5", backend, num_envs=1, max_episode_frames=200)
    envs.reset()
    truncated_at = 0
    for step in range(1, 61):
        _, _, terminated_N, truncated_N, infos = envs.step(np.zeros(1, dtype=np.int64))
        if truncated_N[0]:
            truncated_at = step
            break
    assert not terminated_N[0]
    assert truncated_at == 50  # 200 frames are 50 agent steps, counted after the no-op start on both backends
    assert infos["_episode"][0] and infos["episode"]["l"][0] == 50
    envs.close()


def test_eval_env_plays_whole_games_and_reports_the_raw_score() -> None:
    env = make_atari_env("ALE/Breakout-v5", seed=0, training=False)
    env.reset()
    rng = np.random.default_rng(0)
    rewards: list[float] = []
    lives: list[int] = []
    for _ in range(2000):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(0, 4)))
        rewards.append(float(reward))
        lives.append(info["lives"])
        if terminated or truncated:
            break
    assert terminated and not truncated and info["lives"] == 0
    assert sorted(set(lives)) == [0, 1, 2, 3, 4, 5]  # five lives lost, one episode
    assert info["episode"]["r"] == sum(rewards) > 0
    assert info["episode"]["l"] == len(rewards)  # the no-op start is not counted (Dopamine's protocol)


def test_eval_env_keeps_raw_rewards_and_training_env_clips_them() -> None:
    seen = {}
    for training in (False, True):
        env = make_atari_env("ALE/SpaceInvaders-v5", seed=0, training=training)
        env.reset()
        rng = np.random.default_rng(0)
        rewards = [float(env.step(int(rng.integers(0, 6)))[1]) for _ in range(150)]
        seen[training] = set(rewards)
    assert seen[True] == {0.0, 1.0}
    assert max(seen[False]) >= 5.0 and seen[False] <= {0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 200.0}


def test_training_env_fires_on_reset_and_goes_on_with_the_game_after_a_lost_life() -> None:
    """Breakout with NOOP only: the ball moves (FIRE on reset), each lost life ends an episode."""
    env = make_atari_env("ALE/Breakout-v5", seed=0, training=True, fire_reset=True)
    _, info = env.reset()
    assert info["lives"] == 5
    for lives_left in (4, 3):
        for _ in range(200):
            _, _, terminated, truncated, info = env.step(0)
            if terminated or truncated:
                break
        assert terminated and not truncated and info["lives"] == lives_left
        assert "episode" not in info  # a life, not the game
        frame = info["episode_frame_number"]
        _, info = env.reset()
        assert info["lives"] == lives_left  # the same game goes on...
        assert info["episode_frame_number"] > frame  # ...from where it was, not from its first frame


def test_eval_env_fires_only_on_reset() -> None:
    env = make_atari_env("ALE/Breakout-v5", seed=0, training=False, fire_reset=True)
    env.reset()
    lives = [env.step(0)[4]["lives"] for _ in range(250)]
    assert lives[0] == 5 and lives[-1] == 4  # the ball launched on reset is lost; no new one is launched


def test_envs_are_seeded() -> None:
    a, b = (make_atari_env("ALE/Breakout-v5", seed=3, training=True) for _ in range(2))
    obs_a, _ = a.reset()
    obs_b, _ = b.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    for action in [1, 2, 3, 0, 2, 2, 3, 1] * 3:
        np.testing.assert_array_equal(a.step(action)[0], b.step(action)[0])


def test_unknown_ids_and_backends_are_refused() -> None:
    assert is_atari_id("ALE/Breakout-v5")
    assert not is_atari_id("CartPole-v1")
    assert not is_atari_id("ALE/NoSuchGame-v5")
    with pytest.raises(ValueError, match="expected an ALE id such as 'ALE/Breakout-v5'"):
        make_atari_env("CartPole-v1", seed=0, training=True)
    with pytest.raises(ValueError, match="not registered by ale-py"):
        make_atari_env("ALE/NoSuchGame-v5", seed=0, training=True)
    with pytest.raises(ValueError, match="unknown Atari backend 'jax'"):
        make_atari_vec_env("ALE/Breakout-v5", num_envs=1, seed=0, backend="jax")


# --- The Atari 100k protocol (Dopamine's DataEfficientAtariRunner) on both backends -----------------


@pytest.mark.slow
def test_games_start_with_0_to_29_noop_agent_steps_drawn_from_the_env_generator() -> None:
    from dueldqn.envs.atari_state import find_replay_log

    env = make_atari_env("ALE/Pong-v5", seed=0, training=False)
    log = find_replay_log(env)
    assert log is not None
    frames = []
    for _ in range(300):
        env.reset()
        frames.append(len(log.frame_actions))  # emulator frames since the game's reset: the no-ops only
        assert set(log.frame_actions) <= {0}
    noops = np.array(frames) // 4
    assert (np.array(frames) % 4 == 0).all()  # whole agent steps of 4 frames, not single frames
    assert noops.min() == 0 and noops.max() == 29 and len(set(noops.tolist())) == 30
    for noop_max in (0, 1):
        env = make_atari_env("ALE/Pong-v5", seed=0, training=False, noop_max=noop_max)
        env.reset()
        log = find_replay_log(env)
        assert log is not None and len(log.frame_actions) == 0


# evaluation envs are gymnasium envs whatever the training backend: no (envpool, evaluation) case
@pytest.mark.parametrize(("backend", "training"), [("gymnasium", True), ("gymnasium", False), ("envpool", True)])
def test_fire_is_left_to_the_agent(backend: str, training: bool) -> None:
    """Breakout waits for FIRE: with NOOP only the ball is never launched, no life is lost, nothing is scored."""
    envs = _vec_env("ALE/Breakout-v5", backend, num_envs=1, training=training)
    envs.reset()
    for _ in range(300):
        _, reward_N, terminated_N, truncated_N, infos = envs.step(np.zeros(1, dtype=np.int64))
        assert reward_N[0] == 0 and not terminated_N[0] and not truncated_N[0] and infos["lives"][0] == 5
    envs.close()


@pytest.mark.slow
@pytest.mark.parametrize("game", ["Breakout", "Pong", "Boxing"])
def test_both_backends_give_the_same_frames_for_the_same_actions(game: str) -> None:
    """Until the first lost life, with no random no-ops: EnvPool always plays at least one no-op frame
    on reset (``noop_max=1``), so the gymnasium env plays that one frame too; from there on every
    step's newest frame, reward and ``terminated`` are equal."""
    pytest.importorskip("envpool", reason="the envpool backend needs EnvPool: pip install dueldqn[envpool]")
    pool = make_atari_vec_env(f"ALE/{game}-v5", num_envs=1, seed=0, backend="envpool", noop_max=1)
    gym_envs = make_atari_vec_env(f"ALE/{game}-v5", num_envs=1, seed=0, backend="gymnasium", noop_max=0)
    pool.reset()
    gym_envs.reset(seed=0)
    unwrapped = gym_envs.envs[0].unwrapped  # type: ignore[attr-defined]
    unwrapped.ale.act(unwrapped._action_set[0], 1.0)  # EnvPool's one no-op frame
    rng = np.random.default_rng(0)
    n_actions = int(gym_envs.single_action_space.n)  # type: ignore[attr-defined]
    for step in range(1, 401):
        actions_N = rng.integers(0, n_actions, 1)
        obs_p, reward_p, terminated_p, _, _ = pool.step(actions_N)
        obs_g, reward_g, terminated_g, _, _ = gym_envs.step(actions_N)
        np.testing.assert_array_equal(obs_p[:, -1], obs_g[:, -1], err_msg=f"step {step}")
        if step >= 4:  # the whole stack, once the reset frames are out of it
            np.testing.assert_array_equal(obs_p, obs_g, err_msg=f"step {step}")
        assert reward_p[0] == reward_g[0] and terminated_p[0] == terminated_g[0]
        if terminated_p[0]:
            break
    assert step > 50
