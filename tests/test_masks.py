"""Invalid-action masks: hand-computed masked targets, masked acting, storage, the env boundary, whole runs.

The runs use :mod:`dueldqn.envs.testing`'s corridor, which raises if an illegal action reaches it: a
run that finishes never acted illegally, in training, in evaluation or on Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dueldqn import train
from dueldqn.agent import Agent
from dueldqn.cli import build_parser
from dueldqn.config import Config
from dueldqn.envs import make_vec_env
from dueldqn.envs.masks import VectorMasks, check_mask, run_masks
from dueldqn.envs.testing import IllegalAction
from dueldqn.executors.env_runner import EnvRunner, initial_td_errors
from dueldqn.executors.replay_shard import ReplayShard
from dueldqn.exploration import epsilon_greedy_actions, epsilon_greedy_probs
from dueldqn.networks import build_q_network
from dueldqn.numpy_mlp import numpy_greedy
from dueldqn.replay import FrameReplayBuffer, PrioritizedReplay, ReplayBuffer
from dueldqn.targets import (
    categorical_next_distribution,
    double_q_target,
    q_learning_target,
    td_target,
)

CORRIDOR = "dueldqn.envs.testing:MaskedCorridor-v0"
METHOD_CORRIDOR = "dueldqn.envs.testing:MaskMethodCorridor-v0"
# The corridor's optimum: jump, jump, right (positions 0 -> 2 -> 4 -> 5): 1 - 2 * 0.01. A short run may end one
# step longer (0.97: the discounted values differ by under 1%); a policy that wanders scores far lower.
OPTIMUM = 0.98
NEAR_OPTIMUM = 0.97 - 1e-9
RUN: dict[str, Any] = {
    "total_steps": 1_500,
    "learning_starts": 200,
    "epsilon_decay_steps": 800,
    "batch_size": 32,
    "hidden_sizes": (32,),
    "eval_episodes": 3,
    "log_interval": 500,
    "target_sync_every": 100,
}

# --- targets -----------------------------------------------------------------------------------

R = torch.tensor([1.0, 0.0])
TERM = torch.tensor([0.0, 1.0])
Q_TARG = torch.tensor([[5.0, 2.0, 1.0], [3.0, 4.0, 9.0]])
Q_ONLINE = torch.tensor([[9.0, 1.0, 4.0], [0.0, 0.0, 0.0]])
MASK = torch.tensor([[False, True, True], [False, False, False]])  # row 1: a terminal s' with no legal action


def test_masked_q_learning_target_takes_the_best_legal_action() -> None:
    # Row 0: max over actions {1, 2} of Q_targ = 2 (not 5); row 1 terminal: just r.
    target = q_learning_target(R, TERM, Q_TARG, 0.5, MASK)
    assert torch.allclose(target, torch.tensor([1.0 + 0.5 * 2.0, 0.0]))
    assert torch.allclose(q_learning_target(R, TERM, Q_TARG, 0.5), torch.tensor([1.0 + 0.5 * 5.0, 0.0]))


def test_masked_double_q_target_lets_the_online_net_pick_among_legal_actions() -> None:
    # Online argmax over {1, 2} is 2 (4 > 1); the target net values it at 1.
    target = double_q_target(R, TERM, Q_TARG, Q_ONLINE, 0.5, MASK)
    assert torch.allclose(target, torch.tensor([1.0 + 0.5 * 1.0, 0.0]))


def test_masked_epsilon_greedy_policy_spreads_epsilon_over_legal_actions_only() -> None:
    probs = epsilon_greedy_probs(Q_ONLINE, 0.2, MASK)
    # Row 0: legal {1, 2}, best legal 2: [0, 0.1, 0.1 + 0.8]; row 1 (none legal: as all legal): 0.2/3 + 0.8 at 0.
    expected = torch.tensor([[0.0, 0.1, 0.9], [0.2 / 3 + 0.8, 0.2 / 3, 0.2 / 3]])
    assert torch.allclose(probs, expected)


def test_masked_expected_sarsa_and_sarsa_targets() -> None:
    nets = (lambda _: Q_ONLINE, lambda _: Q_TARG)
    obs = torch.zeros(2, 1)
    # Expected SARSA row 0: 0.1 * 2 + 0.9 * 1 = 1.1; the illegal action's Q_targ (5) has weight 0.
    target = td_target("expected-sarsa", R, TERM, obs, *nets, 0.5, 0.2, None, MASK)
    assert torch.allclose(target, torch.tensor([1.0 + 0.5 * 1.1, 0.0]))
    # SARSA: A' is drawn among the legal actions: over many draws, only Q_targ values 2 (a'=1) and 1 (a'=2).
    rows = torch.zeros(400, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    values = td_target(
        "sarsa",
        R[rows],
        TERM[rows],
        obs[rows],
        lambda _: Q_ONLINE[rows],
        lambda _: Q_TARG[rows],
        1.0,
        0.5,
        gen,
        MASK[rows],
    )
    bootstraps = set((values - 1.0).tolist())
    assert bootstraps == {2.0, 1.0}


def test_masked_categorical_next_distribution() -> None:
    support = torch.tensor([0.0, 1.0, 2.0])
    # Two actions' distributions per row: a=0 expects 2 (all mass on 2), a=1 expects 0.
    p_BAZ = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]] * 2)
    mask = torch.tensor([[False, True], [True, True]])
    best = categorical_next_distribution("dqn", p_BAZ, None, support, 0.0, None, mask)
    assert torch.equal(best[0], p_BAZ[0, 1]) and torch.equal(best[1], p_BAZ[1, 0])  # row 0: a=0 is illegal
    q_online = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    double = categorical_next_distribution("double", p_BAZ, q_online, support, 0.0, None, mask)
    assert torch.equal(double[0], p_BAZ[0, 1]) and torch.equal(double[1], p_BAZ[1, 0])
    expected = categorical_next_distribution("expected-sarsa", p_BAZ, q_online, support, 0.5, None, mask)
    # Row 0: only a=1 legal: all its mass; row 1: 0.25 + 0.5 on a=0, 0.25 on a=1.
    assert torch.allclose(expected, torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.0, 0.75]]))
    sarsa = categorical_next_distribution(
        "sarsa",
        p_BAZ[:1].repeat(50, 1, 1),
        q_online[:1].repeat(50, 1),
        support,
        0.9,
        torch.Generator().manual_seed(1),
        mask[:1].repeat(50, 1),
    )
    assert torch.equal(sarsa, p_BAZ[0, 1].repeat(50, 1))


def test_masked_initial_priorities_take_the_max_over_legal_actions() -> None:
    q_obs = np.array([[[1.0, 0.0]]])
    q_next = np.array([[[10.0, 3.0]]])
    args = (
        q_obs,
        q_next,
        np.array([[0]]),
        np.array([[0.0]]),
        np.array([[0.0]]),
        np.array([[False]]),
        np.array([[True]]),
    )
    masked = initial_td_errors(*args, n_step=1, gamma=1.0, next_mask_TKA=np.array([[[False, True]]]))
    assert masked[0, 0] == pytest.approx(3.0 - 1.0)
    assert initial_td_errors(*args, n_step=1, gamma=1.0)[0, 0] == pytest.approx(10.0 - 1.0)


# --- acting ------------------------------------------------------------------------------------


def test_masked_exploration_is_uniform_over_legal_actions_from_the_same_draws() -> None:
    mask = np.array([[False, True, False, True, True]] * 3)
    # u / eps lands in thirds: the 0th, 1st and 2nd legal action (1, 3, 4); the greedy one is never asked for.
    u = np.array([0.1, 0.5, 0.9]) * 0.6
    actions = epsilon_greedy_actions(lambda: pytest.fail("no env exploits"), u, 0.6, 5, mask)
    assert actions.tolist() == [1, 3, 4]
    rng = np.random.default_rng(0)
    many = epsilon_greedy_actions(
        lambda: np.zeros(6000, dtype=np.int64), rng.random(6000), 1.0, 5, np.repeat(mask[:1], 6000, axis=0)
    )
    counts = np.bincount(many, minlength=5)
    assert counts[[0, 2]].sum() == 0 and all(abs(c - 2000) < 150 for c in counts[[1, 3, 4]])
    per_env = epsilon_greedy_actions(
        lambda: np.array([7, 7, 7]), np.array([0.05, 0.5, 0.01]), np.array([0.1, 0.1, 0.02]), 5, mask
    )
    assert per_env.tolist() == [3, 7, 3]  # u / eps = 0.5: legal index floor(1.5) = 1 (action 3); env 1 exploits


def test_numpy_and_torch_greedy_agree_on_the_best_legal_action() -> None:
    torch.manual_seed(0)
    q_net = build_q_network(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(4), dueling=True, hidden_sizes=(8,))
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    mask = np.random.default_rng(1).random((64, 4)) < 0.5
    mask[np.arange(64), np.arange(64) % 4] = True
    with torch.no_grad():
        q = q_net(torch.from_numpy(obs)).numpy()
    expected = np.where(mask, q, -np.inf).argmax(axis=1)
    greedy = numpy_greedy(q_net)
    assert greedy is not None
    assert np.array_equal(greedy(obs, mask), expected) and mask[np.arange(64), expected].all()
    agent = Agent(q_net, gym.spaces.Box(-1, 1, (3,)), 4, epsilon=1.0, seed=0)
    assert np.array_equal(agent.predict(obs, action_mask=mask)[0], expected)
    explored = agent.predict(obs, deterministic=False, action_mask=mask)[0]
    assert mask[np.arange(64), explored].all()
    assert agent.predict(obs[0], action_mask=mask[0].astype(np.int8))[0] == expected[0]
    with pytest.raises(ValueError, match=r"Agent.predict: expected an action mask of shape \(64, 4\)"):
        agent.predict(obs, action_mask=mask[:, :3])
    with pytest.raises(ValueError, match="no legal action"):
        agent.predict(obs[:1], action_mask=np.zeros((1, 4), dtype=bool))


# --- storage -----------------------------------------------------------------------------------


def _rows(step: int, n: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    obs = np.full((n, 2), step, dtype=np.float32)
    return obs, np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.float32), obs + 1, np.zeros(n, bool), np.zeros(n, bool)


def test_replay_stores_the_next_states_mask_and_n_step_takes_the_bootstrap_states() -> None:
    replay = ReplayBuffer(8, (2,), np.float32, n_step=3, gamma=0.5, mask_actions=3)
    masks = [np.array([[t % 3 == 0, t % 3 == 1, t % 3 == 2]]) for t in range(4)]
    for t in range(4):
        replay.add(*_rows(t), next_mask_N=masks[t])
    batch = replay.gather(np.array([0, 1, 3]))
    assert batch.next_mask is not None
    # slot 0 folds 0, 1, 2: bootstraps from s_3, whose mask slot 2 holds; slot 1 from s_4 (slot 3); slot 3 alone.
    assert np.array_equal(batch.next_mask, np.concatenate([masks[2], masks[3], masks[3]]))
    one_step = ReplayBuffer(8, (2,), np.float32, mask_actions=3)
    one_step.add(*_rows(0, 2), np.array([True, False]), next_mask_N=np.array([[1, 0, 0], [0, 1, 0]], bool))
    one_step_mask = one_step.gather(np.array([0])).next_mask
    assert one_step_mask is not None and one_step_mask.tolist() == [[True, False, False]]  # the invalid row not stored
    restored = ReplayBuffer(8, (2,), np.float32, n_step=3, gamma=0.5, mask_actions=3)
    restored.load_state_dict(replay.state_dict())
    restored_mask = restored.gather(np.array([0, 1, 3])).next_mask
    assert restored_mask is not None and np.array_equal(restored_mask, batch.next_mask)
    with pytest.raises(ValueError, match=r"expected next-state action masks of shape \(1, 3\), got None"):
        replay.add(*_rows(5))
    plain = ReplayBuffer(8, (2,), np.float32)
    assert plain.next_mask.nbytes == 0 and plain.gather(np.array([0])).next_mask is None
    with pytest.raises(ValueError, match="holds no action masks"):
        replay.load_state_dict(plain.state_dict())
    prioritized = PrioritizedReplay(ReplayBuffer(8, (2,), np.float32, mask_actions=3), alpha=0.6)
    prioritized.add(*_rows(0), next_mask_N=masks[1])
    sampled_mask = prioritized.sample(2, np.random.default_rng(0), beta=0.4).next_mask
    assert sampled_mask is not None and sampled_mask.tolist() == [[False, True, False]] * 2


def test_frame_replay_packs_each_slots_mask_into_bits() -> None:
    A = 10  # two bytes of bits per slot
    replay = FrameReplayBuffer(40, (2, 3), np.uint8, num_envs=1, n_step=2, gamma=0.9, mask_actions=A)
    plain = FrameReplayBuffer(40, (2, 3), np.uint8, num_envs=1, n_step=2, gamma=0.9)
    assert replay.nbytes - plain.nbytes == 40 * 2
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(8, 3), dtype=np.uint8)
    masks = rng.random((7, A)) < 0.5
    for t in range(6):
        obs, next_obs = frames[t : t + 2][None], frames[t + 1 : t + 3][None]
        replay.add(
            obs,
            np.array([1]),
            np.array([0.0], np.float32),
            next_obs,
            np.array([False]),
            np.array([False]),
            next_mask_N=masks[t : t + 1],
        )
    slots = replay.valid_indices()
    batch = replay.gather(slots)
    # a two-step window bootstraps from the next slot's s' (the newest slot bootstraps from its own)
    expected = np.concatenate([masks[1:6], masks[5:6]])
    assert batch.next_mask is not None and np.array_equal(batch.next_mask, expected)
    again = FrameReplayBuffer(40, (2, 3), np.uint8, num_envs=1, n_step=2, gamma=0.9, mask_actions=A)
    again.load_state_dict(replay.state_dict())
    again_mask = again.gather(slots).next_mask
    assert again_mask is not None and np.array_equal(again_mask, expected)


# --- the env boundary --------------------------------------------------------------------------


def test_bad_masks_are_clear_errors_naming_the_step_and_the_env(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"here: expected an action mask of shape \(1, 4\), got \(1, 3\)"):
        check_mask(np.ones((1, 3), bool), 4, 1, where="here")
    with pytest.raises(ValueError, match="bools or 0/1 integers, got dtype float32"):
        check_mask(np.ones((1, 4), np.float32), 4, 1, where="here")
    with pytest.raises(ValueError, match="bools or 0/1 integers"):
        check_mask(np.full((1, 4), 2), 4, 1, where="here")
    config: dict[str, Any] = {"run_dir": None, "progress": False, "tensorboard": False, **RUN}
    cases = {
        "MaskedCorridorBadShape-v0": r"MaskedCorridorBadShape-v0 at env step 0: expected an action mask",
        "MaskedCorridorFloat-v0": "MaskedCorridorFloat-v0 at env step 0: .* got dtype float32",
        "MaskedCorridorStuck-v0": r"MaskedCorridorStuck-v0 at env step \d+, env 0: a non-terminal state with "
        "no legal action",
    }
    for i, (env_id, message) in enumerate(cases.items()):
        config["run_dir"] = tmp_path / f"bad{i}"
        with pytest.raises(ValueError, match=message):
            train(env_id=f"dueldqn.envs.testing:{env_id}", **config)
    with pytest.raises(ValueError, match="action_mask is 'on' but CartPole-v1 gives no action mask"):
        train(env_id="CartPole-v1", action_mask="on", **{**config, "run_dir": tmp_path / "on"})
    with pytest.raises(IllegalAction):  # the corridor really raises: masks off, the random actions hit it
        train(env_id=CORRIDOR, action_mask="off", **{**config, "run_dir": tmp_path / "off"})


def test_vector_masks_follow_the_observation_through_an_autoreset() -> None:
    envs = make_vec_env(CORRIDOR, 2, seed=0)
    _, infos = envs.reset(seed=0)
    masks = run_masks("auto", CORRIDOR, envs, infos)
    assert isinstance(masks, VectorMasks) and masks.source == "info"
    assert masks.read(envs, infos, 0).tolist() == [[False, True, True, False]] * 2
    for step, actions in enumerate(([2, 1], [2, 1], [1, 1])):  # env 0: 0 -> 2 -> 4 -> 5 (goal)
        _, _, terminated, _, infos = envs.step(np.array(actions))
        mask = masks.read(envs, infos, step + 1, terminated)
    assert terminated.tolist() == [True, False] and mask[0].tolist() == [False] * 4  # the goal: no legal action
    _, _, _, _, infos = envs.step(np.array([1, 1]))  # env 0 resets: the mask of its new first observation
    assert masks.read(envs, infos, 4)[0].tolist() == [False, True, True, False]
    method_envs = make_vec_env(METHOD_CORRIDOR, 2, seed=0)
    _, infos = method_envs.reset(seed=0)
    method = run_masks("auto", METHOD_CORRIDOR, method_envs, infos)
    assert method is not None and method.source == "method"
    assert run_masks("off", CORRIDOR, envs, infos) is None
    assert run_masks("auto", "CartPole-v1", make_vec_env("CartPole-v1", 1, 0), {}) is None


# --- whole runs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "settings"),
    [
        (CORRIDOR, {"algo": "dqn"}),
        (CORRIDOR, {"algo": "double", "num_envs": 2, "n_step": 3, "prioritized": True}),
        (CORRIDOR, {"algo": "sarsa", "numpy_mlp": False}),
        (METHOD_CORRIDOR, {"algo": "expected-sarsa"}),
        (CORRIDOR, {"distributional": True, "v_min": -1.0, "v_max": 1.0, "atoms": 11}),
    ],
)
def test_masked_runs_never_act_illegally_and_learn_the_corridor(tmp_path: Path, env_id: str, settings: dict) -> None:
    result = train(env_id=env_id, run_dir=tmp_path / "run", progress=False, tensorboard=False, **RUN, **settings)
    assert result.eval is not None and OPTIMUM + 1e-9 >= result.eval.mean >= NEAR_OPTIMUM  # illegal: it would raise


def test_a_resumed_masked_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"env_id": CORRIDOR, "num_envs": 2, "progress": False, "tensorboard": False, **RUN}
    whole = train(run_dir=tmp_path / "whole", **settings)
    paused = train(run_dir=tmp_path / "paused", stop_at=701, **settings)  # a step with episodes in flight
    assert not paused.finished
    done = train(resume=tmp_path / "paused", progress=False, tensorboard=False)
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "paused" / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert done.summary["eval_mean_return"] == whole.summary["eval_mean_return"]


def test_runner_chunks_carry_masks_and_the_shard_stores_them() -> None:
    config = Config(
        env_id=CORRIDOR, executor="ray", num_env_runners=1, envs_per_runner=2, n_step=2, batch_size=8, buffer_size=200
    )
    runner = EnvRunner(config, index=0, num_runners=1)
    chunk = runner.collect(30)
    assert chunk.next_mask_TKA is not None and chunk.next_mask_TKA.shape == (30, 2, 4)
    # every action was legal in the state it was taken in (the env would have raised otherwise) and the masks
    # are those of the next observations: the goal (5) has none, the start (0) {right, jump}
    positions = chunk.next_obs_TKO.argmax(axis=-1)
    assert (chunk.next_mask_TKA[positions == 5] == False).all()  # noqa: E712
    assert (chunk.next_mask_TKA[positions == 0] == np.array([False, True, True, False])).all()
    shard = ReplayShard(config, index=0, obs_shape=(6,), obs_dtype=np.float32, mask_actions=4)
    shard.add_chunk(chunk)
    batch = shard.storage.gather(shard.storage.valid_indices())
    assert batch.next_mask is not None and not batch.next_mask[:, 3].any()  # "wait" is never legal
    with pytest.raises(ValueError, match="without action masks to a shard whose run uses masks"):
        shard.add_chunk(chunk._replace(seq=1, next_mask_TKA=None))


def test_cli_takes_action_mask() -> None:
    args = build_parser().parse_args(["train", "--action-mask", "off"])
    assert args.action_mask == "off"
    # Deliberately not strings: Config.action_mask is annotated str, and __post_init__ maps True / None to on / auto.
    assert Config(action_mask=True).action_mask == "on" and Config(action_mask=None).action_mask == "auto"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="action_mask must be one of auto, on, off"):
        Config(action_mask="yes")


@pytest.mark.slow
def test_a_masked_run_trains_and_evaluates_on_ray(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dueldqn.checkpoint import list_checkpoints, load_checkpoint

    result = train(
        env_id=CORRIDOR,
        executor="ray",
        num_env_runners=2,
        envs_per_runner=1,
        n_step=2,
        prioritized=True,
        runner_chunk_steps=50,
        run_dir=tmp_path / "ray",
        progress=False,
        tensorboard=False,
        **{**RUN, "total_steps": 3_000},
    )
    # The runners acted and the driver evaluated without an illegal action (the corridor would have raised);
    # what the greedy policy learnt depends on the actors' timing, so only the range of returns is asserted.
    assert result.summary["total_steps"] >= 3_000 and result.summary["updates"] > 0
    assert result.eval is not None and all(-0.5 - 1e-9 <= r <= OPTIMUM + 1e-9 for r in result.eval.returns)
    replay = load_checkpoint(list_checkpoints(result.run_dir)[0]).states["replay"]
    masks = [value for key, value in replay.items() if key.endswith("next_mask")]
    assert masks and len(masks[0]) > 1_000 and not masks[0][:, 3].any() and masks[0][:, 1].any()  # "wait": never


def test_evaluation_of_a_saved_run_explores_among_legal_actions_only(tmp_path: Path) -> None:
    from dueldqn.envs import make_eval_env
    from dueldqn.evaluate import evaluate, evaluate_run

    run = train(
        env_id=CORRIDOR, run_dir=tmp_path / "run", progress=False, tensorboard=False, **{**RUN, "total_steps": 300}
    )
    result, _ = evaluate_run(run.run_dir, episodes=20, epsilon=1.0)  # every action random: each a legal one
    assert len(result.returns) == 20 and all(-0.5 - 1e-9 <= r <= OPTIMUM + 1e-9 for r in result.returns)
    agent = Agent.load(run.run_dir, epsilon=1.0, seed=0)
    with pytest.raises(IllegalAction):  # the same random policy without masks hits an illegal action
        evaluate(
            make_eval_env(CORRIDOR, seed=0),
            lambda obs: int(agent.predict(obs, deterministic=False)[0]),
            episodes=20,
            seed=0,
        )
