"""The learning side of the atari100k preset (DrQ(epsilon)): config, augmented updates, target = online, resume."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dueldqn import DuelDQN
from dueldqn.augment import augment
from dueldqn.config import PRESETS, Config, resolve_config
from dueldqn.exploration import epsilon_at
from dueldqn.learner import Learner
from dueldqn.networks import build_q_network
from dueldqn.replay import Batch


def _config(**changes: object) -> Config:
    return resolve_config("ALE/Breakout-v5", "atari100k", dict(changes))


def test_the_preset_is_dopamines_drq_epsilon() -> None:
    c = _config()
    assert (c.n_step, c.gamma, c.loss, c.batch_size, c.learning_starts) == (10, 0.99, "huber", 32, 1_600)
    assert (c.learning_rate, c.adam_eps, c.weight_decay, c.max_grad_norm) == (1e-4, 1.5e-4, 0.0, 0.0)
    assert (c.train_frequency, c.gradient_steps, c.target_sync, c.tau) == (1, 1, "polyak", 1.0)
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps, c.epsilon_decay_start) == (1.0, 0.01, 5_000, 1_600)
    assert (c.eval_episodes, c.eval_epsilon, c.augment, c.total_steps) == (100, 0.001, True, 100_000)
    assert c.buffer_size >= 2 * c.total_steps  # the replay never evicts (lead slots included)
    assert "atari100k" in PRESETS and resolve_config("ALE/Pong-v5", "atari100k").env_id == "ALE/Pong-v5"


def test_epsilon_decays_over_the_5k_steps_after_the_warm_up() -> None:
    c = _config()

    def eps(step: int) -> float:
        return epsilon_at(
            step - c.epsilon_decay_start, c.epsilon_schedule, c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps
        )

    # Dopamine's linearly_decaying_epsilon(5000, step, 1600, 0.01): 1 until 1,600, 0.01 from 6,600
    assert [eps(s) for s in (0, 1_600, 4_100, 6_600, 100_000)] == pytest.approx([1.0, 1.0, 0.505, 0.01, 0.01])
    assert Config().epsilon_decay_start == 0  # other presets decay from step 0, as before
    with pytest.raises(ValueError, match="epsilon_decay_start must be a non-negative integer"):
        _config(epsilon_decay_start=-1)
    with pytest.raises(ValueError, match="augment must be true or false"):
        _config(augment="yes")


def _batch(rng: np.random.Generator, size: int = 8) -> Batch:
    frames = rng.integers(0, 256, size=(size, 5, 84, 84), dtype=np.uint8)  # s = frames 0-3, s' = 1-4
    return Batch(
        obs=frames[:, :4].copy(),
        actions=rng.integers(0, 4, size),
        rewards=rng.normal(size=size).astype(np.float32),
        next_obs=frames[:, 1:].copy(),
        terminated=(rng.random(size) < 0.3).astype(np.float32),
        discounts=(0.99 ** rng.integers(1, 11, size)).astype(np.float32),
    )


def _learner(seed: int = 0, **changes: object) -> Learner:
    torch.manual_seed(seed)
    return Learner(
        DuelDQN(), _config(**changes), device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed)
    )


def test_an_update_trains_on_independently_augmented_s_and_s_prime() -> None:
    learner = _learner()
    before = copy.deepcopy(learner.online)
    batch = _batch(np.random.default_rng(0))
    g = torch.Generator().set_state(learner.generator.get_state())  # the draws the update will make
    obs, next_obs = augment(torch.from_numpy(batch.obs), g), augment(torch.from_numpy(batch.next_obs), g)
    assert not torch.equal(obs[:, 1:], next_obs[:, :-1])  # the shared frames moved differently
    with torch.no_grad():  # y = R^(k) + gamma^k (1 - terminated) max_a' Q(s'_aug, a'), the online net as target
        target = (
            torch.from_numpy(batch.rewards)
            + torch.from_numpy(batch.discounts)
            * (1 - torch.from_numpy(batch.terminated))
            * before(next_obs).max(dim=1).values
        )
        q_sa = before(obs).gather(1, torch.from_numpy(batch.actions)[:, None]).squeeze(1)
        want = F.smooth_l1_loss(q_sa, target)
    update = learner.update(batch, epsilon=0.01, lr=1e-4)
    torch.testing.assert_close(update.loss, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(update.td_abs_B, (q_sa - target).abs(), rtol=1e-5, atol=1e-6)
    assert torch.equal(learner.generator.get_state(), g.get_state())  # exactly those draws, no others
    assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), learner.online.parameters(), strict=True))
    assert learner.optimizer.param_groups[0]["eps"] == 1.5e-4 and learner.optimizer.param_groups[0]["weight_decay"] == 0


def test_without_augment_the_update_sees_the_frames_as_stored() -> None:
    learner = _learner(augment=False)
    state = learner.generator.get_state()
    learner.update(_batch(np.random.default_rng(1)), epsilon=0.01, lr=1e-4)
    assert torch.equal(learner.generator.get_state(), state)  # no draws


def test_the_target_is_the_online_network_when_synced_after_every_update() -> None:
    learner = _learner()
    assert learner.target is learner.online
    learner.update(_batch(np.random.default_rng(2)), epsilon=0.01, lr=1e-4)
    learner.sync_target(1.0)  # the loop's polyak sync with tau 1: nothing to copy
    assert learner.target is learner.online
    separate = _learner(target_sync="steps", target_sync_every=1)  # the same schedule, spelled as a copy
    assert separate.target is not separate.online


def test_augment_needs_a_convolutional_network() -> None:
    import gymnasium as gym

    mlp = build_q_network(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"augment .* needs image observations"):
        Learner(mlp, _config(), device=torch.device("cpu"), generator=torch.Generator())


def test_a_restored_learner_goes_on_bit_exactly() -> None:
    """Weights, Adam's moments and the generator (what a checkpoint saves) are all an augmented update needs."""
    rng = np.random.default_rng(3)
    batches = [_batch(rng) for _ in range(5)]
    first = _learner(seed=1)
    for batch in batches[:3]:
        first.update(batch, epsilon=0.01, lr=1e-4)
    second = _learner(seed=2)  # other weights and generator, overwritten below
    second.online.load_state_dict(first.online.state_dict())
    second.optimizer.load_state_dict(copy.deepcopy(first.optimizer.state_dict()))  # as from a file: no sharing
    second.generator.set_state(first.generator.get_state())
    for batch in batches[3:]:
        a = first.update(batch, epsilon=0.01, lr=1e-4)
        b = second.update(batch, epsilon=0.01, lr=1e-4)
        assert torch.equal(a.loss, b.loss)
    for p, q in zip(first.online.parameters(), second.online.parameters(), strict=True):
        assert torch.equal(p, q)


def test_the_shared_target_is_saved_once_and_a_checkpoint_of_it_loads(tmp_path: Path) -> None:
    from dueldqn.checkpoint import load_checkpoint, save_checkpoint

    learner = _learner()
    learner.update(_batch(np.random.default_rng(4)), epsilon=0.01, lr=1e-4)
    state = learner.state_dict()
    assert not any(k.startswith("target.") for k in state)  # derivable: the target is the online network
    path = save_checkpoint(tmp_path, 1, {"learner": state}, meta={"config": {}, "network": {}}, keep=1)
    other = _learner(seed=5)
    other.load_state_dict(load_checkpoint(path).states["learner"])
    assert other.target is other.online
    for p, q in zip(learner.online.parameters(), other.online.parameters(), strict=True):
        assert torch.equal(p, q)
