"""A few hundred steps of the atari100k preset on Breakout: 10-step returns, DrQ augmentation, target = online."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.learner import Learner
from dueldqn.replay import FrameReplayBuffer
from dueldqn.training import train

pytest.importorskip("ale_py")
pytest.importorskip("cv2")


@pytest.mark.slow
def test_atari100k_trains_with_n_step_augmentation_and_the_online_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discounts: list[np.ndarray] = []
    terminated: list[np.ndarray] = []
    learner_update = Learner.update

    def spy(self: Learner, batch, **kwargs):  # type: ignore[no-untyped-def]
        assert self.target is self.online  # synced after every update: the same network
        discounts.append(batch.discounts)
        terminated.append(batch.terminated)
        return learner_update(self, batch, **kwargs)

    monkeypatch.setattr(Learner, "update", spy)
    result = train(
        env_id="ALE/Breakout-v5",
        preset="atari100k",
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
        total_steps=300,
        learning_starts=100,
        epsilon_decay_start=100,
        buffer_size=1_000,
        log_interval=100,
        checkpoint_every=150,
        eval_episodes=1,
        eval_epsilon=1.0,
    )  # eval_epsilon 1.0: a random policy ends its game soon

    # one update per env step from step 100 on (steps 100, 101, ..., 300), on 32 transitions each
    assert result.summary["updates"] == 201 == len(discounts)
    discounts_U = np.stack(discounts)  # (updates, 32)
    assert discounts_U.shape == (201, 32)
    k_U = np.round(np.log(discounts_U) / np.log(0.99)).astype(int)
    np.testing.assert_allclose(discounts_U, np.float32(0.99) ** k_U, rtol=1e-6)  # gamma^k, 1 <= k <= 10
    assert k_U.min() >= 1 and k_U.max() == 10
    assert (k_U == 10).mean() > 0.5  # most windows are whole
    assert (k_U < 10).any()  # some stop early: at a lost life (terminal), or at the newest transitions
    assert np.stack(terminated).any()  # Breakout's lost lives end windows with no bootstrap

    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run")[0])
    assert ckpt.states["loop"]["updates"] == 201 and ckpt.states["loop"]["steps"] == 300
    config = ckpt.meta["config"]
    assert (config["n_step"], config["augment"], config["target_sync"], config["tau"]) == (10, True, "polyak", 1.0)
    learner = ckpt.states["learner"]
    assert "generator" in learner  # draws the augmentation: a resume draws on where it stopped
    assert any(k.startswith("optimizer.") and k.endswith("exp_avg_sq") for k in learner)
    assert any(k.startswith("online.") for k in learner)
    assert not any(k.startswith("target.") for k in learner)  # the target is the online network: saved once
    # The replay comes back with its episode ends, so its n-step windows are the same after a resume.
    saved = ckpt.states["replay"]
    replay = FrameReplayBuffer(1_000, (4, 84, 84), np.uint8, n_step=10, gamma=0.99)
    replay.load_state_dict(saved)
    one_step = FrameReplayBuffer(1_000, (4, 84, 84), np.uint8)
    one_step.load_state_dict(saved)
    lives_lost = int(one_step.gather(one_step.valid_indices()).terminated.sum())
    assert lives_lost >= 1
    # nothing evicted: every step is stored but the autoreset step after each lost life (if any came yet)
    assert len(replay) in (300 - lives_lost, 300 - lives_lost + 1)
    batch = replay.gather(replay.valid_indices())
    assert batch.discounts is not None and batch.terminated.sum() > lives_lost  # windows that reach a lost life

    resumed = train(resume=tmp_path / "run", total_steps=350, progress=False, tensorboard=False)
    assert resumed.summary["updates"] == 251  # learning goes straight on: the replay came back whole
