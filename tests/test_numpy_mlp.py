"""The numpy acting and update of MLP Q-networks against the torch reference, to float32 precision."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from threadpoolctl import threadpool_info

from dueldqn.config import Config
from dueldqn.learner import gradient_step, update_target
from dueldqn.networks import build_q_network
from dueldqn.numpy_mlp import NumpyAdamW, NumpyMLPUpdate, numpy_greedy
from dueldqn.replay import ReplayBuffer
from dueldqn.training import train

CPU = torch.device("cpu")
OBS_SPACE = gym.spaces.Box(-5.0, 5.0, (4,), np.float32)


def _nets(dueling: bool, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    q_net = build_q_network(OBS_SPACE, gym.spaces.Discrete(3), dueling=dueling, hidden_sizes=(32, 16))
    return q_net, copy.deepcopy(q_net).requires_grad_(False)


def _adamw(q_net: torch.nn.Module, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(q_net.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True)


def _replay() -> ReplayBuffer:
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(1000, (4,), np.float32)
    n = 500
    replay.add(
        rng.standard_normal((n, 4), dtype=np.float32),
        rng.integers(0, 3, n),
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal((n, 4), dtype=np.float32),
        rng.random(n) < 0.2,
        np.zeros(n, dtype=bool),
    )
    return replay


def _assert_same_state(ref: tuple, ours: tuple) -> None:
    """Equal up to float32 rounding: summation order differs between numpy's and torch's kernels,
    and Adam divides by sqrt(v), which magnifies the rounding of near-zero gradients (the
    parameters moved by up to lr * steps = 0.3; they agree to 5e-5)."""
    (q_ref, t_ref, opt_ref), (q_ours, t_ours, opt_ours) = ref, ours
    for a, b in zip(
        [*q_ref.parameters(), *t_ref.parameters()], [*q_ours.parameters(), *t_ours.parameters()], strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=5e-5)
    state_ref, state_ours = opt_ref.state_dict()["state"], opt_ours.state_dict()["state"]
    assert state_ref.keys() == state_ours.keys()
    for index in state_ref:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state_ours[index][name], state_ref[index][name], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("algo", ["dqn", "double", "sarsa", "expected-sarsa"])
@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize(("loss", "max_grad_norm", "weight_decay"), [("mse", 0.0, 0.0), ("huber", 0.5, 0.01)])
def test_numpy_update_matches_the_torch_gradient_step(
    algo: str, dueling: bool, loss: str, max_grad_norm: float, weight_decay: float
) -> None:
    config = Config(
        algo=algo, dueling=dueling, loss=loss, max_grad_norm=max_grad_norm, gamma=0.9, hidden_sizes=(32, 16)
    )
    q_ref, t_ref = _nets(dueling)
    q_ours, t_ours = copy.deepcopy(q_ref), copy.deepcopy(t_ref)
    opt_ref, opt_ours = _adamw(q_ref, weight_decay), _adamw(q_ours, weight_decay)
    update = NumpyMLPUpdate.create(
        q_ours, t_ours, opt_ours, algo=algo, gamma=0.9, loss=loss, max_grad_norm=max_grad_norm
    )
    assert update is not None
    gen_ref, gen_ours = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    replay, rng = _replay(), np.random.default_rng(2)
    for k in range(30):
        batch = replay.sample(64, rng)
        for opt in (opt_ref, opt_ours):
            opt.param_groups[0]["lr"] = 1e-2 * (1 - k / 60)  # the loop anneals the rate through the group
        if k % 2:  # every other batch as prioritized n-step replay gives it: weights and gamma^k
            batch = batch._replace(
                weights=rng.uniform(0.2, 1.0, 64).astype(np.float32),
                discounts=np.float32(0.99) ** rng.integers(1, 4, 64).astype(np.float32),
            )
        ref = gradient_step(q_ref, t_ref, opt_ref, batch, config=config, epsilon=0.3, device=CPU, generator=gen_ref)
        ours = update.step(batch, epsilon=0.3, generator=gen_ours)
        torch.testing.assert_close(ours.loss, ref.loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ours.td_abs_B, ref.td_abs_B, rtol=1e-4, atol=1e-5)
        if k == 10:  # a hard sync in between: the numpy views of the target follow it
            update_target(t_ref, q_ref)
            update_target(t_ours, q_ours)
    _assert_same_state((q_ref, t_ref, opt_ref), (q_ours, t_ours, opt_ours))
    assert float(opt_ours.state_dict()["state"][0]["step"]) == 30
    assert not torch.equal(next(t_ref.parameters()), next(q_ref.parameters()))  # learning happened since


def test_numpy_update_takes_over_moments_loaded_by_a_resume() -> None:
    replay, rng = _replay(), np.random.default_rng(3)
    batches = [replay.sample(32, rng) for _ in range(20)]
    gen = torch.Generator().manual_seed(0)

    def make(q_net: torch.nn.Module, t_net: torch.nn.Module, opt: torch.optim.Optimizer) -> NumpyMLPUpdate:
        update = NumpyMLPUpdate.create(q_net, t_net, opt, algo="double", gamma=0.99, loss="huber", max_grad_norm=1.0)
        assert update is not None
        return update

    q_a, t_a = _nets(True)
    opt_a = _adamw(q_a, 0.01)
    update_a = make(q_a, t_a, opt_a)
    for batch in batches[:10]:
        update_a.step(batch, epsilon=0.1, generator=gen)
    saved_opt = copy.deepcopy(opt_a.state_dict())  # what a checkpoint holds
    saved_nets = copy.deepcopy(q_a.state_dict()), copy.deepcopy(t_a.state_dict())

    q_b, t_b = _nets(True, seed=9)
    opt_b = _adamw(q_b, 0.01)
    q_b.load_state_dict(saved_nets[0])
    t_b.load_state_dict(saved_nets[1])
    opt_b.load_state_dict(saved_opt)
    update_b = make(q_b, t_b, opt_b)
    for batch in batches[10:]:
        update_a.step(batch, epsilon=0.1, generator=gen)
        update_b.step(batch, epsilon=0.1, generator=gen)
    for a, b in zip(q_a.parameters(), q_b.parameters(), strict=True):
        assert torch.equal(a, b)
    assert float(opt_b.state_dict()["state"][3]["step"]) == 20


def test_optimizer_state_dict_holds_the_live_moments() -> None:
    q_net, t_net = _nets(False)
    opt = _adamw(q_net, 0.0)
    update = NumpyMLPUpdate.create(q_net, t_net, opt, algo="dqn", gamma=0.99, loss="mse", max_grad_norm=0.0)
    assert update is not None
    replay = _replay()
    before = opt.state_dict()["state"][0]["exp_avg"].clone()
    update.step(replay.sample(16, np.random.default_rng(0)), epsilon=0.0, generator=torch.Generator())
    after = opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(before, torch.zeros_like(before)) and after.abs().sum() > 0


def test_numpy_greedy_matches_torch_argmax() -> None:
    obs_ND = np.random.default_rng(0).standard_normal((256, 4)).astype(np.float32)
    for dueling in (False, True):
        q_net, _ = _nets(dueling)
        greedy = numpy_greedy(q_net)
        assert greedy is not None
        with torch.no_grad():
            expected = q_net(torch.from_numpy(obs_ND)).argmax(dim=1).numpy()
        # None: the mask's default, which numpy_greedy's Callable return type cannot say
        np.testing.assert_array_equal(greedy(obs_ND, None), expected)
        np.testing.assert_array_equal(greedy(obs_ND.astype(np.float64), None), expected)


def test_what_the_numpy_path_does_not_take() -> None:
    q_net, t_net = _nets(True)
    kwargs: dict[str, Any] = {"algo": "dqn", "gamma": 0.99, "loss": "mse", "max_grad_norm": 0.0}
    assert NumpyMLPUpdate.create(q_net, t_net, torch.optim.Adam(q_net.parameters()), **kwargs) is None
    assert NumpyMLPUpdate.create(q_net, t_net, torch.optim.AdamW(q_net.parameters(), amsgrad=True), **kwargs) is None
    frames = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)
    conv = build_q_network(frames, gym.spaces.Discrete(4), dueling=True, hidden_sizes=(64,))
    assert numpy_greedy(conv) is None
    assert NumpyMLPUpdate.create(conv, copy.deepcopy(conv), _adamw(conv, 0.0), **kwargs) is None
    assert numpy_greedy(q_net.double()) is None


def test_a_run_learns_the_same_through_numpy_and_torch(tmp_path: Path) -> None:
    # Both paths must see the same experience, whatever the CPU rounds differently: the behaviour
    # is random (epsilon 1; the draws depend on the seed alone) and the target is Q-learning's max,
    # continuous in the weights, so no argmax near a tie can send the two runs apart.
    config = Config(
        total_steps=600,
        learning_starts=100,
        batch_size=32,
        hidden_sizes=(32,),
        train_frequency=2,
        target_sync="steps",
        target_sync_every=100,
        algo="dqn",
        loss="huber",
        max_grad_norm=10.0,
        epsilon_schedule="constant",
        epsilon_start=1.0,
        eval_episodes=1,
        checkpoint_every=0,
    )
    runs, updates = {}, set()
    pools_before, threads_before = threadpool_info(), torch.get_num_threads()
    for numpy_mlp in (True, False):
        result = train(
            config, run_dir=tmp_path / str(numpy_mlp), progress=False, tensorboard=False, numpy_mlp=numpy_mlp
        )
        updates.add(result.summary["updates"])
        runs[numpy_mlp] = load_file(result.run_dir / "model.safetensors")
    assert updates == {251}  # steps 100, 102, ..., 600
    # One thread for torch and numpy's BLAS during the runs; the caller's thread counts after them.
    assert torch.get_num_threads() == threads_before
    assert [p["num_threads"] for p in threadpool_info()] == [p["num_threads"] for p in pools_before]
    assert runs[True].keys() == runs[False].keys()
    for name in runs[True]:
        torch.testing.assert_close(runs[True][name], runs[False][name], rtol=1e-4, atol=1e-5)


def test_numpy_adamw_steps_and_saves_as_torch_adamw() -> None:
    # NumpyAdamW stands in for torch.optim.AdamW on the numpy path (building a torch optimizer imports
    # torch._dynamo, seconds): the same steps, and state dicts each optimizer loads from the other.
    replay, rng = _replay(), np.random.default_rng(5)
    batches = [replay.sample(32, rng) for _ in range(12)]
    runs = {}
    for kind in ("torch", "numpy"):
        q_net, t_net = _nets(True)
        opt: torch.optim.Optimizer | NumpyAdamW = (
            _adamw(q_net, 0.01) if kind == "torch" else NumpyAdamW(q_net.parameters(), lr=1e-2, weight_decay=0.01)
        )
        update = NumpyMLPUpdate.create(q_net, t_net, opt, algo="dqn", gamma=0.99, loss="mse", max_grad_norm=0.0)
        assert update is not None
        gen = torch.Generator().manual_seed(0)
        for batch in batches:
            update.step(batch, epsilon=0.1, generator=gen)
        runs[kind] = (q_net, opt.state_dict())
    (q_torch, sd_torch), (q_numpy, sd_numpy) = runs["torch"], runs["numpy"]
    for a, b in zip(q_torch.parameters(), q_numpy.parameters(), strict=True):
        assert torch.equal(a, b)  # the same numpy arithmetic behind both
    assert sd_numpy["param_groups"] == sd_torch["param_groups"]  # the same keys and values
    assert sd_numpy["state"].keys() == sd_torch["state"].keys()
    for index, moments in sd_torch["state"].items():
        assert moments.keys() == sd_numpy["state"][index].keys()
        for name, value in moments.items():
            assert torch.equal(value, sd_numpy["state"][index][name])

    # Each loads the other's state dict; a state of another network is refused.
    fresh_numpy = NumpyAdamW(q_numpy.parameters(), lr=1.0)
    fresh_numpy.load_state_dict(copy.deepcopy(sd_torch))
    assert fresh_numpy.param_groups[0]["lr"] == 1e-2 and float(fresh_numpy.state_dict()["state"][0]["step"]) == 12
    fresh_torch = _adamw(q_torch, 0.0)
    fresh_torch.load_state_dict(copy.deepcopy(sd_numpy))
    assert torch.equal(fresh_torch.state_dict()["state"][2]["exp_avg"], sd_numpy["state"][2]["exp_avg"])
    other, _ = _nets(False)
    with pytest.raises(ValueError, match="parameter group"):
        NumpyAdamW(other.parameters(), lr=1e-3).load_state_dict(sd_torch)
