"""Exact Atari resume: the emulator replayed from its game's reset, checked byte for byte, refused when it differs."""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import finish, kill_when_paused, metrics_rows, start_cli

pytest.importorskip("ale_py", reason="Atari tests need ale-py: pip install dueldqn[atari]")
pytest.importorskip("cv2", reason="AtariPreprocessing needs opencv: pip install dueldqn[atari]")

from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.envs import restore_vector_env_state, vector_env_state
from dueldqn.envs.atari import make_atari_vec_env


def _play(envs: gym.vector.VectorEnv, actions_TN: np.ndarray) -> list[tuple[Any, ...]]:
    """Step ``envs`` through the actions; what each step returned, with the finished games' scores."""
    out = []
    for actions_N in actions_TN:
        obs_N, rewards_N, terminated_N, truncated_N, infos = envs.step(actions_N)
        scores = infos["episode"]["r"][infos["_episode"]].tolist() if "_episode" in infos else []
        out.append((obs_N, rewards_N, terminated_N, truncated_N, scores))
    return out


def _saved_state_after_a_lost_life(
    game: str, sticky: float = 0.0
) -> tuple[dict[str, Any], gym.vector.VectorEnv, np.random.Generator]:
    """Two training envs played at random until one loses a life; their state as JSON would store it."""
    envs = make_atari_vec_env(f"ALE/{game}-v5", num_envs=2, seed=7, repeat_action_probability=sticky)
    envs.reset(seed=7)
    rng = np.random.default_rng(0)
    n_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]
    for _ in range(2_000):
        _, _, terminated_N, _, _ = envs.step(rng.integers(0, n_actions, 2))
        if terminated_N.any():  # the next step only resets that env: the autoreset flag must survive too
            break
    assert terminated_N.any()
    return json.loads(json.dumps(vector_env_state(envs))), envs, rng


# Qbert: a direct restoreState is not exact on ale-py 0.12.1. Sticky actions: the last action is not in ALE's state.
@pytest.mark.slow
@pytest.mark.parametrize(("game", "sticky"), [("Breakout", 0.0), ("Qbert", 0.0), ("Pong", 0.25)])
def test_restored_envs_go_on_exactly_as_the_saved_ones(game: str, sticky: float) -> None:
    state, envs, rng = _saved_state_after_a_lost_life(game, sticky)
    assert len(state["ale"]) == 2 and state["ale"][0]["game"] == game.lower()
    fresh = make_atari_vec_env(f"ALE/{game}-v5", num_envs=2, seed=123, repeat_action_probability=sticky)
    restore_vector_env_state(fresh, state)
    actions_TN = rng.integers(0, int(envs.single_action_space.n), (400, 2))  # type: ignore[attr-defined]
    straight, resumed = _play(envs, actions_TN), _play(fresh, actions_TN)
    for t, (a, b) in enumerate(zip(straight, resumed, strict=True)):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
    assert any(step[2].any() or step[1].any() for step in straight)  # the game went on: lives lost or points


def _tampered(state: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(state))
    copy["ale"][0][key] = value
    return copy


@pytest.mark.slow
def test_a_tampered_or_foreign_state_is_refused_with_a_clear_error() -> None:
    state, _, _ = _saved_state_after_a_lost_life("Breakout")
    current = bytearray(base64.b64decode(state["ale"][0]["current_state"]))
    current[len(current) // 2] ^= 1
    flipped = base64.b64encode(bytes(current)).decode()
    actions = base64.b64decode(state["ale"][0]["frame_actions"])
    one_less = base64.b64encode(actions[:-1]).decode()
    cases = [
        (_tampered(state, "current_state", flipped), "differs from the state saved at the checkpoint"),
        (_tampered(state, "frame_actions", one_less), "differs from the state saved at the checkpoint"),
        (_tampered(state, "game", "pong"), "has game='pong' but this env has 'breakout'"),
        (_tampered(state, "ale_py", "0.11.0"), "has ale_py='0.11.0'"),
        (_tampered(state, "reset_state", "not base64!"), "not valid base64"),
    ]
    for bad, message in cases:
        envs = make_atari_vec_env("ALE/Breakout-v5", num_envs=2, seed=7)
        with pytest.raises(ValueError, match=message):
            restore_vector_env_state(envs, bad)
    pong = make_atari_vec_env("ALE/Pong-v5", num_envs=2, seed=7)  # the state as saved, into another game
    with pytest.raises(ValueError, match="has game='breakout' but this env has 'pong'"):
        restore_vector_env_state(pong, state)


def test_envpool_has_no_state_and_resumes_with_new_games() -> None:
    pytest.importorskip("envpool")
    envs = make_atari_vec_env("ALE/Breakout-v5", num_envs=2, seed=0, backend="envpool")
    assert vector_env_state(envs) is None
    envs.close()


# End to end: a Breakout run killed with SIGKILL after a checkpoint and resumed in a new process.
ARGS = [
    "train",
    "--env",
    "ALE/Breakout-v5",
    "--steps",
    "400",
    "--checkpoint-every",
    "200",
    "--learning-starts",
    "100",
    "--buffer-size",
    "1000",
    "--batch-size",
    "8",
    "--log-interval",
    "100",
    "--eval-episodes",
    "2",
    "--eval-epsilon",
    "1.0",
    "--epsilon-decay-steps",
    "300",
    "--no-progress",
    "--torch-threads",
    "1",
]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_breakout_run(tmp_path: Path) -> None:
    straight_dir, run_dir = tmp_path / "straight", tmp_path / "run"
    finish(start_cli(*ARGS, "--run-dir", str(straight_dir)))

    # the run waits right after checkpoint 200 until the kill: it lands there on any machine
    first = start_cli(*ARGS, "--run-dir", str(run_dir), pause_at=200, marker=tmp_path / "paused")
    assert kill_when_paused(first, tmp_path / "paused", signal.SIGKILL) == -signal.SIGKILL
    ckpt = load_checkpoint(list_checkpoints(run_dir)[0])
    assert ckpt.step == 200 and not (run_dir / "model.safetensors").exists()
    snapshot = ckpt.states["envs"]["snapshot"]
    assert snapshot is not None and len(snapshot["ale"]) == 1  # the emulator was saved
    assert len(base64.b64decode(snapshot["ale"][0]["frame_actions"])) > 0  # mid-game: a replay to do

    finish(start_cli("train", "--resume", str(run_dir), "--no-progress"))
    assert (run_dir / "model.safetensors").read_bytes() == (straight_dir / "model.safetensors").read_bytes()
    rows = metrics_rows(run_dir)
    assert rows == metrics_rows(straight_dir) and len(rows) >= 4
    assert (run_dir / "eval.json").read_text() == (straight_dir / "eval.json").read_text()
    assert len(json.loads((run_dir / "eval.json").read_text())["returns"]) == 2
