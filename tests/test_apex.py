"""Ape-X: the Ray-free pieces in-process, then the Ray executor on one shared local Ray instance.

The Ray tests (skipped without ``pip install "dueldqn[ray]"``) share one Ray with fixed CPUs and no
dashboard; the two-node cluster test runs last, on a cluster of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import subprocess_env

from dueldqn.config import Config
from dueldqn.executors.env_runner import Chunk, EnvRunner, FrameChunk, initial_td_errors, pack_frames, unpack_frames
from dueldqn.executors.replay_shard import ReplayShard
from dueldqn.exploration import annealed_apex_epsilons, apex_epsilons, epsilon_greedy_actions
from dueldqn.replay import PrioritizedReplay, Replay, ReplayBuffer


def add_step(replay: Replay, chunk: Chunk, t: int) -> None:
    """Step ``t`` of a runner's chunk into a local replay, as the reference for what a shard must hold."""
    replay.add(
        chunk.obs_TKO[t],
        chunk.actions_TK[t],
        chunk.rewards_TK[t],
        chunk.next_obs_TKO[t],
        chunk.terminated_TK[t],
        chunk.truncated_TK[t],
        chunk.valid_TK[t],
    )


def test_apex_epsilons_follow_the_formula() -> None:
    eps_N = apex_epsilons(8)
    assert np.allclose(eps_N, [0.4 ** (1 + 7 * i / 7) for i in range(8)])
    assert eps_N[0] == pytest.approx(0.4) and eps_N[-1] == pytest.approx(0.4**8)
    assert len(set(eps_N.tolist())) == 8
    assert apex_epsilons(1).tolist() == [0.4]
    assert np.allclose(apex_epsilons(3, base=0.2, alpha=2.0), [0.2, 0.2**2, 0.2**3])  # a narrower spread
    assert apex_epsilons(3, base=0.05, alpha=0.0).tolist() == [0.05] * 3  # alpha 0: one rate for every env
    # A runner takes its slice of the run's rates, with the config's base and alpha.
    config = Config(num_env_runners=2, envs_per_runner=2, apex_epsilon_base=0.2, apex_epsilon_alpha=2.0)
    runner = EnvRunner(config, index=1, num_runners=2)
    assert np.allclose(runner.epsilons_K, [0.2 ** (1 + 2 * 2 / 3), 0.2**3])
    runner.close()


def test_per_env_epsilons_explore_at_their_own_rate() -> None:
    uniforms_N = np.array([0.1, 0.1, 0.9, 0.3])
    eps_N = np.array([1.0, 0.0, 0.95, 0.2])
    actions_N = epsilon_greedy_actions(lambda: np.full(4, 7), uniforms_N, eps_N, n_actions=3)
    # env 0 explores: floor(3 * 0.1 / 1.0) = 0; env 1 (eps 0) and env 3 (u >= eps) are greedy;
    # env 2 explores: floor(3 * 0.9 / 0.95) = 2.
    assert actions_N.tolist() == [0, 7, 2, 7]


def test_runner_rates_anneal_from_epsilon_start_to_the_apex_rates() -> None:
    rates_K = apex_epsilons(4)
    # linear over 1,000 steps: halfway, each env is halfway between 1.0 and its own rate; then its rate.
    half = annealed_apex_epsilons(500, rates_K, "linear", 1.0, 1_000)
    assert np.allclose(half, (1.0 + rates_K) / 2)
    assert np.allclose(annealed_apex_epsilons(5_000, rates_K, "linear", 1.0, 1_000), rates_K, rtol=1e-12)
    assert np.array_equal(annealed_apex_epsilons(0, rates_K, "linear", 1.0, 0), rates_K)  # no schedule: Ape-X's
    assert np.array_equal(annealed_apex_epsilons(0, rates_K, "constant", 1.0, 1_000), rates_K)
    # Env 1 of 2 has Ape-X rate 0.4 ** 8: greedy almost always; asked at run step 0 it explores at epsilon_start.
    config = Config(num_env_runners=1, envs_per_runner=2, epsilon_start=1.0, epsilon_decay_steps=10_000)
    runner = EnvRunner(config, index=0, num_runners=1)

    def greedy_share(chunk) -> float:  # type: ignore[no-untyped-def]
        greedy_T = runner.actor.q_values(chunk.obs_TKO[:, 1]).argmax(axis=1)
        return float((chunk.actions_TK[:, 1] == greedy_T).mean())

    assert greedy_share(runner.collect(400)) > 0.99
    assert 0.4 < greedy_share(runner.collect(400, run_step=0)) < 0.6  # uniform over CartPole's 2 actions
    assert greedy_share(runner.collect(400, run_step=10_000)) > 0.99
    runner.close()


def test_prioritized_add_takes_initial_priorities() -> None:
    replay = PrioritizedReplay(ReplayBuffer(8, (1,), np.float32, num_envs=3), alpha=0.5, eps=0.01)
    obs = np.zeros((3, 1), dtype=np.float32)
    td_N = np.array([3.0, 99.0, 0.0])
    valid_N = np.array([True, False, True])  # the middle row is an autoreset step: not stored
    replay.add(obs, np.zeros(3, np.int64), np.zeros(3), obs, np.zeros(3), np.zeros(3), valid_N, td_abs_N=td_N)
    leaves = replay.tree.leaves[:2]
    assert np.allclose(leaves, [(3.0 + 0.01) ** 0.5, 0.01**0.5])
    assert replay.max_priority == pytest.approx(3.01**0.5)
    with pytest.raises(ValueError, match="finite"):
        replay.add(obs, np.zeros(3, np.int64), np.zeros(3), obs, np.zeros(3), np.zeros(3), td_abs_N=-td_N)


def _slow_td(q_obs, q_next, actions, rewards, terminated, ended, valid, n, gamma):  # type: ignore[no-untyped-def]
    T, K = actions.shape
    out = np.zeros((T, K))
    for t in range(T):
        for k in range(K):
            if not valid[t, k]:
                continue
            g, disc, last = 0.0, 1.0, t
            for j in range(n):
                u = t + j
                if u >= T or not valid[u, k]:
                    break
                g += disc * rewards[u, k]
                disc *= gamma
                last = u
                if ended[u, k]:
                    break
            boot = q_next[last, k].max() * (1.0 - terminated[last, k])
            out[t, k] = abs(g + disc * boot - q_obs[t, k, actions[t, k]])
    return out


def test_initial_td_errors_match_a_slow_loop() -> None:
    rng = np.random.default_rng(0)
    T, K, A = 9, 3, 2
    q_obs, q_next = rng.normal(size=(T, K, A)), rng.normal(size=(T, K, A))
    actions = rng.integers(0, A, size=(T, K))
    rewards = rng.normal(size=(T, K))
    terminated = np.zeros((T, K))
    truncated = np.zeros((T, K), dtype=bool)
    terminated[2, 0], truncated[5, 1] = 1.0, True
    ended = terminated.astype(bool) | truncated
    valid = np.ones((T, K), dtype=bool)
    valid[3, 0], valid[6, 1] = False, False  # the autoreset steps after those ends
    for n in (1, 3):
        fast = initial_td_errors(q_obs, q_next, actions, rewards, terminated, ended, valid, n_step=n, gamma=0.9)
        slow = _slow_td(q_obs, q_next, actions, rewards, terminated, ended, valid, n, 0.9)
        assert np.allclose(fast, slow)


def test_runner_chunks_are_streams_with_unique_ids() -> None:
    config = Config(num_env_runners=2, envs_per_runner=2, prioritized=True, n_step=3)
    runner = EnvRunner(config, index=1, num_runners=2, incarnation=5)
    assert np.allclose(runner.epsilons_K, apex_epsilons(4)[2:])
    first, second = runner.collect(30), runner.collect(30)
    assert (first.seq, second.seq) == (0, 1)
    assert np.array_equal(first.next_obs_TKO[-1], second.obs_TKO[0])  # one stream across chunks
    ids = np.concatenate([first.ids_TK.ravel(), second.ids_TK.ravel()])
    assert sorted(ids.tolist()) == list(range(120)) and first.incarnation == 5
    assert (first.td_abs_TK[first.valid_TK] >= 0).all() and (first.td_abs_TK[~first.valid_TK] == 0).all()
    # A step after an episode's end only resets the env: not a transition.
    ended = first.terminated_TK | first.truncated_TK
    assert (~first.valid_TK[1:][ended[:-1]]).all()
    runner.close()


def test_shard_stores_every_valid_row_once_and_in_order() -> None:
    config = Config(num_env_runners=2, envs_per_runner=2, n_step=3, prioritized=True, buffer_size=10_000)
    runners = [EnvRunner(config, index=r, num_runners=2) for r in range(2)]
    shard = ReplayShard(config, index=0, obs_shape=(4,), obs_dtype=np.float32, record_ids=True)
    produced = 0
    for _ in range(3):
        for runner in runners:
            chunk = runner.collect(40)
            produced += shard.add_chunk(chunk)
    stats = shard.stats()
    assert stats["ingested"] == produced == len(shard) == len(stats["ids"])
    assert len(np.unique(stats["ids"], axis=0)) == produced
    with pytest.raises(ValueError, match="expected 3"):
        shard.add_chunk(runners[0].collect(5)._replace(seq=7))
    # A new life of runner 0 cuts its streams: no n-step window joins the two lives.
    assert isinstance(shard.storage, ReplayBuffer)
    reborn = EnvRunner(config, index=0, num_runners=2, incarnation=1)
    before = shard.storage.open_N.copy()
    shard.add_chunk(reborn.collect(1)._replace(valid_TK=np.zeros((1, 2), dtype=bool)))
    assert (shard.storage.open_N[:2] == -1).all() and (shard.storage.open_N[2:] == before[2:]).all()
    batches = shard.sample_many(2, 16, beta=0.4)
    assert batches is not None and len(batches) == 2 and batches[0].discounts is not None


def test_shard_folds_n_step_as_the_local_replay_does() -> None:
    # One runner's chunks into a shard, and the same rows one vector step at a time into the local
    # loop's replay: the same slots, the same stream links, the same folded n-step batch.
    config = Config(num_env_runners=1, envs_per_runner=2, n_step=3, gamma=0.9, buffer_size=500)
    runner = EnvRunner(config, index=0, num_runners=1)
    shard = ReplayShard(config, index=0, obs_shape=(4,), obs_dtype=np.float32)
    local = ReplayBuffer(500, (4,), np.float32, num_envs=2, n_step=3, gamma=0.9)
    for _ in range(4):
        chunk = runner.collect(60)
        shard.add_chunk(chunk)
        for t in range(60):
            add_step(local, chunk, t)
    assert isinstance(shard.storage, ReplayBuffer)
    assert np.array_equal(shard.storage.next_slot, local.next_slot) and len(shard) == len(local)
    slots = np.arange(len(local))
    ours, theirs = shard.storage.gather(slots), local.gather(slots)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "discounts"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    assert theirs.discounts is not None
    assert (theirs.discounts < 0.9**2 + 1e-6).any()  # some windows really fold 3 steps


def _frame_stream_chunk(T: int, K: int, frames: int = 4, seed: int = 0) -> Chunk:
    """A chunk of K frame-stacked streams (3x5 frames) with episode ends: s' = s shifted by one frame,
    and the step after an end only resets its env (invalid row, s' a fresh stack)."""
    rng = np.random.default_rng(seed)
    obs_KO = rng.integers(0, 255, (K, frames, 3, 5), dtype=np.uint8)
    obs_TKO = np.empty((T, K, frames, 3, 5), dtype=np.uint8)
    next_obs_TKO = np.empty_like(obs_TKO)
    terminated_TK = rng.random((T, K)) < 0.1
    valid_TK = np.ones((T, K), dtype=bool)
    valid_TK[1:] = ~terminated_TK[:-1]
    terminated_TK &= valid_TK
    for t in range(T):
        obs_TKO[t] = obs_KO
        for k in range(K):
            frame = rng.integers(0, 255, (1, 3, 5), dtype=np.uint8)
            fresh = rng.integers(0, 255, (frames, 3, 5), dtype=np.uint8)
            next_obs_TKO[t, k] = np.concatenate([obs_KO[k, 1:], frame]) if valid_TK[t, k] else fresh
        obs_KO = next_obs_TKO[t].copy()
    zeros = np.zeros((T, K))
    return Chunk(
        0,
        0,
        0,
        obs_TKO,
        rng.integers(0, 4, (T, K)),
        zeros.astype(np.float32),
        next_obs_TKO,
        terminated_TK,
        np.zeros((T, K), dtype=bool),
        valid_TK,
        zeros,
        np.arange(T * K).reshape(T, K),
        [],
        3,
    )


def test_frame_chunks_send_each_frame_once_and_unpack_to_the_same_chunk() -> None:
    chunk = _frame_stream_chunk(T=40, K=3)
    resets = int((~chunk.valid_TK).sum())
    assert resets > 0  # the chunk crosses episode ends
    packed = pack_frames(chunk)
    assert isinstance(packed, FrameChunk)
    # Each step's new frame once, plus the first stacks and the reset stacks: not two stacks per row.
    assert packed.frames_TK.shape == (40, 3, 3, 5) and packed.resets_RO.shape == (resets, 4, 3, 5)
    sent = packed.first_obs_KO.nbytes + packed.frames_TK.nbytes + packed.resets_RO.nbytes
    assert sent == (3 * 4 + 40 * 3 + resets * 4) * 15 < (chunk.obs_TKO.nbytes + chunk.next_obs_TKO.nbytes) / 4
    back = unpack_frames(packed)
    for name in Chunk._fields:
        ours, theirs = getattr(back, name), getattr(chunk, name)
        assert np.array_equal(ours, theirs) if isinstance(theirs, np.ndarray) else ours == theirs, name
    assert unpack_frames(chunk) is chunk  # a plain chunk passes through
    # Stacks that do not chain by one frame (another wrapper) are sent as they are, never rebuilt wrong.
    broken = chunk._replace(next_obs_TKO=chunk.next_obs_TKO[:, :, ::-1].copy())
    assert pack_frames(broken) is broken
    flat = chunk._replace(obs_TKO=chunk.obs_TKO.reshape(40, 3, -1), next_obs_TKO=chunk.next_obs_TKO.reshape(40, 3, -1))
    assert pack_frames(flat) is flat  # a vector observation (CartPole) has no frames


def test_frame_shard_rebuilds_atari_stacks_and_folds_n_step_as_the_local_replay_does() -> None:
    # Breakout: the shard stores each frame once (FrameReplayBuffer) and folds n-step returns with
    # the config's n and gamma, as the local loop's frame replay fed the same rows does.
    pytest.importorskip("ale_py")
    from dueldqn.replay import FrameReplayBuffer

    config = Config(
        env_id="ALE/Breakout-v5", num_env_runners=1, envs_per_runner=2, n_step=3, gamma=0.9, buffer_size=400
    )
    runner = EnvRunner(config, index=0, num_runners=1)
    shard = ReplayShard(config, index=0, obs_shape=(4, 84, 84), obs_dtype=np.uint8, frames=True)
    packed_shard = ReplayShard(config, index=0, obs_shape=(4, 84, 84), obs_dtype=np.uint8, frames=True)
    local = FrameReplayBuffer(400, (4, 84, 84), np.uint8, num_envs=2, n_step=3, gamma=0.9)
    rows = []
    for _ in range(3):
        chunk = runner.collect(50)
        shard.add_chunk(chunk)
        packed = pack_frames(chunk)  # as a runner actor sends it: each frame once
        assert isinstance(packed, FrameChunk) and packed_shard.add_chunk(packed) == chunk.transitions
        for t in range(50):
            add_step(local, chunk, t)
        rows += [
            (chunk.obs_TKO[t, k], chunk.next_obs_TKO[t, k], chunk.actions_TK[t, k])
            for t in range(50)
            for k in range(2)
            if chunk.valid_TK[t, k]
        ]
    runner.close()
    assert isinstance(shard.storage, FrameReplayBuffer) and shard.storage.n_step == 3
    assert len(shard) == len(local) == len(rows)  # 200 slots per env: nothing overwritten yet
    idx = local.valid_indices()
    assert np.array_equal(shard.storage.valid_indices(), idx)
    ours, theirs = shard.storage.gather(idx), local.gather(idx)
    packed_rows = packed_shard.storage.gather(idx)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "discounts"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
        assert np.array_equal(getattr(packed_rows, name), getattr(theirs, name)), name
    assert ours.discounts is not None and (ours.discounts < 0.9**2 + 1e-6).any()  # windows fold 3 steps
    stored = {(o.tobytes(), int(a)) for o, a in zip(ours.obs, ours.actions, strict=True)}
    assert stored <= {(o.tobytes(), int(a)) for o, _, a in rows}  # every stack rebuilt is one the runner saw


@pytest.mark.slow
def test_local_run_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys; from dueldqn.training import train; "
        f"train(env_id='CartPole-v1', total_steps=300, learning_starts=100, eval_episodes=1, "
        f"run_dir={str(tmp_path / 'run')!r}, progress=False, tensorboard=False); "
        "assert 'ray' not in sys.modules, 'the local executor imported ray'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), cwd=tmp_path, timeout=120)


STARTUP_FAILS = """
import json, sys
from pathlib import Path
import ray, torch
from dueldqn.config import Config
from dueldqn.executors import ray_apex as rx
from dueldqn.executors.apex import apex_network, run_apex

real_get, real_kill, real_connect = ray.get, ray.kill, rx.connect
seen = {"killed": 0, "session": None}

def get(refs, *args, timeout=None, **kwargs):  # the actors' start-up wait fails, as a placement that never comes
    if timeout == rx.STARTUP_SECONDS:
        raise ray.exceptions.GetTimeoutError("the actors did not start")
    return real_get(refs, *args, timeout=timeout, **kwargs)

def kill(actor, no_restart=True):
    seen["killed"] += 1
    real_kill(actor, no_restart=no_restart)

def connect(config, **kwargs):
    started = real_connect(config, num_cpus=2)
    seen["session"] = str(rx.session_dir())
    return started

ray.get, ray.kill, rx.connect = get, kill, connect
config = Config(executor="ray", num_env_runners=2, envs_per_runner=1, total_steps=1_000, learning_starts=100,
                checkpoint_every=0, log_interval=500)
net = apex_network(config, torch.device("cpu"))
run_dir = Path(sys.argv[1])
run_dir.mkdir()
try:
    run_apex(config, run_dir, net, device=torch.device("cpu"), progress=False, tensorboard=False)
    error = None
except Exception as err:
    error = type(err).__name__
running = ray.is_initialized()
rx.remove_session(Path(seen["session"]))
print(json.dumps({"error": error, "killed": seen["killed"], "ray_running": running}))
"""


@pytest.mark.slow
def test_a_failed_start_up_gives_the_real_error_and_leaves_nothing_running(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray tests need: pip install 'dueldqn[ray]'")
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_FAILS, str(tmp_path / "run")],
        check=True,
        env=subprocess_env(),
        cwd=tmp_path,
        timeout=300,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # the error that happened (not an UnboundLocalError); the 2 runners and the shard killed; the Ray it started, gone
    assert result == {"error": "GetTimeoutError", "killed": 3, "ray_running": False}


# --- the Ray executor ---------------------------------------------------------------------------


def _run(tmp_path: Path, name: str = "run", **overrides):  # type: ignore[no-untyped-def]
    from dueldqn.executors.apex import apex_network, run_apex

    values = dict(
        executor="ray",
        num_env_runners=2,
        envs_per_runner=2,
        total_steps=4_000,
        learning_starts=500,
        batch_size=32,
        prioritized=True,
        n_step=3,
        algo="double",
        runner_chunk_steps=50,
        weight_sync_every=10,
        runner_sync_steps=100,
        log_interval=1_000,
        checkpoint_every=0,
    )
    config = Config(**{**values, **overrides})
    run_dir = tmp_path / name
    run_dir.mkdir()
    net = apex_network(config, torch.device("cpu"))
    result = run_apex(
        config,
        run_dir,
        net,
        device=torch.device("cpu"),
        progress=False,
        tensorboard=False,
        record_ids=True,
        name_prefix=f"{name}-",
    )
    return config, result


@pytest.mark.slow
def test_two_runners_ingest_every_transition_once(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, result = _run(tmp_path)
    state = result.state
    ids = np.concatenate([shard["ids"] for shard in result.shards])
    assert state.steps >= config.total_steps
    assert len(ids) == state.transitions == sum(shard["ingested"] for shard in result.shards)
    assert len(np.unique(ids, axis=0)) == len(ids)  # nothing ingested twice
    assert state.updates > 0
    for r in range(2):
        versions = result.versions[r]
        assert versions == sorted(versions) and versions[-1] > versions[0] >= 0  # the runners took newer weights
        assert np.allclose(result.epsilons[r], apex_epsilons(4)[2 * r : 2 * r + 2])
    assert result.restarts == 0 and all(len(lives) == 1 for lives in result.lives.values())
    assert (tmp_path / "run" / "apex.csv").read_text().count("\n") >= 4
    assert any(p.name.startswith("step_") for p in (tmp_path / "run" / "checkpoints").iterdir())


@pytest.mark.slow
def test_a_killed_runner_is_restarted_and_the_run_finishes(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver kills runner 0 itself as it queues the runner's first chunk at or after env step 1,000 of 4,000:
    # the kill lands at that event on any machine, with a call queued on the runner that Ray retries in its new life.
    ray = ray_local
    from dueldqn.executors import ray_apex as rx

    killed: list[int] = []
    real_run = rx.ApexCluster.run

    def run_then_kill(cluster: rx.ApexCluster, runner: int, run_step: int) -> rx.Pending:
        pending = real_run(cluster, runner, run_step)
        if runner == 0 and run_step >= 1_000 and not killed:
            ray.kill(cluster.runners[0], no_restart=False)
            killed.append(run_step)
        return pending

    monkeypatch.setattr(rx.ApexCluster, "run", run_then_kill)
    config, result = _run(tmp_path, "kill", total_steps=4_000)
    assert len(killed) == 1 and killed[0] < config.total_steps
    assert result.restarts >= 1
    assert len(result.lives[0]) >= 2 and len(result.lives[1]) == 1  # runner 0 came back in a new life
    assert result.state.steps >= config.total_steps and result.state.updates > 0
    ids = np.concatenate([shard["ids"] for shard in result.shards])
    assert len(np.unique(ids, axis=0)) == len(ids)


@pytest.mark.slow
def test_a_rainbow_learner_runs_on_ray(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # C51 with noisy nets: the runners act by expected Q with their own noise, send no priorities (the
    # shards insert at the largest), and the learner sends back cross-entropies. The rate limit holds the runners
    # until the learner keeps up, so their last chunks act with its weights however the machine is loaded.
    config, result = _run(
        tmp_path,
        "rainbow",
        total_steps=2_000,
        distributional=True,
        noisy=True,
        v_min=0.0,
        v_max=100.0,
        epsilon_end=0.0,
        runner_rate_limit=True,
    )
    assert result.state.steps >= config.total_steps and result.state.updates > 0
    ids = np.concatenate([shard["ids"] for shard in result.shards])
    assert len(ids) == result.state.transitions and len(np.unique(ids, axis=0)) == len(ids)
    assert all(versions and versions[-1] > 0 for versions in result.versions.values())  # the runners took weights


@pytest.mark.slow
def test_a_ray_run_resumes_from_its_checkpoint(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dueldqn.training import train

    settings: dict[str, Any] = {
        "executor": "ray",
        "num_env_runners": 2,
        "prioritized": True,
        "n_step": 3,
        "learning_starts": 500,
        "batch_size": 32,
        "log_interval": 500,
        "eval_episodes": 1,
        "runner_chunk_steps": 50,
    }
    first = train(
        env_id="CartPole-v1", total_steps=2_000, run_dir=tmp_path / "run", progress=False, tensorboard=False, **settings
    )
    second = train(resume=tmp_path / "run", total_steps=3_000, progress=False, tensorboard=False)
    assert second.summary["total_steps"] >= 3_000 and second.summary["updates"] > first.summary["updates"]
    rows = (tmp_path / "run" / "apex.csv").read_text().splitlines()[1:]
    steps = [int(row.split(",")[0]) for row in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # continued, no row twice
    # The replay came back: right after the resume it holds more than the new rows alone.
    after = next(row.split(",") for row in rows if int(row.split(",")[0]) > 2_000)
    assert int(after[6]) > int(after[0]) - 2_000


@pytest.mark.slow
def test_a_ray_run_stops_at_its_return_and_a_resume_stays_stopped(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dueldqn.logger import read_metrics
    from dueldqn.training import train

    # Any policy keeps CartPole's pole up for a step: the first evaluation (at >= 1,000 env steps) reaches 1.
    settings: dict[str, Any] = {
        "executor": "ray",
        "num_env_runners": 2,
        "learning_starts": 500,
        "batch_size": 32,
        "log_interval": 500,
        "eval_episodes": 2,
        "runner_chunk_steps": 50,
        "eval_every": 1_000,
        "stop_return": 1.0,
    }
    first = train(
        env_id="CartPole-v1", total_steps=4_000, run_dir=tmp_path / "run", progress=False, tensorboard=False, **settings
    )
    reached = first.summary["stop_return_reached_at"]
    assert reached is not None and 1_000 <= reached < 1_500 and first.summary["total_steps"] == reached
    assert [row["step"] for row in read_metrics(first.run_dir)["eval"]] == [reached]
    second = train(resume=tmp_path / "run", total_steps=5_000, progress=False, tensorboard=False)
    assert second.summary["total_steps"] == reached and second.summary["stop_return_reached_at"] == reached
    assert second.summary["updates"] == first.summary["updates"]  # nothing trained after the stop
    assert [row["step"] for row in read_metrics(first.run_dir)["eval"]] == [reached]


@pytest.mark.slow
def test_apex_learns_cartpole(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The tuned Ape-X settings, preset cartpole-apex: the cartpole preset with prioritized 1-step
    # replay, 2 runners of 2 envs, their rates annealed from 1, held to the local loop's replay ratio
    # and kept near the learner, stopping (as RLlib's learning tests do) at the first greedy
    # evaluation of 20 episodes at or above 475, one every 2,000 env steps, within 60k steps. A Ray run
    # is not reproducible (chunk arrival order, weight lag): BENCHMARKS.md ("Ape-X CartPole: stopping
    # at a greedy 475") has the runs behind these settings and the margins asked for here.
    from dueldqn.config import resolve_config
    from dueldqn.logger import read_metrics
    from dueldqn.training import train

    config = resolve_config("CartPole-v1", "cartpole-apex", {"checkpoint_every": 0})
    assert config.executor == "ray" and config.prioritized and config.n_step == 1 and config.eval_episodes == 20
    assert (config.total_steps, config.eval_every, config.stop_return) == (60_000, 2_000, 475.0)
    result = train(config, run_dir=tmp_path / "learn", progress=False, tensorboard=False)
    reached = result.summary["stop_return_reached_at"]
    evals = read_metrics(result.run_dir)["eval"]
    assert reached is not None and reached == evals[-1]["step"] <= 60_000, evals
    assert evals[-1]["return"] >= 475.0 and all(row["return"] < 475.0 for row in evals[:-1])
    assert [row["step"] // 2_000 for row in evals] == list(range(1, len(evals) + 1))  # one per 2,000 steps
    assert result.summary["total_steps"] == reached  # stopped there
    # The final evaluation plays other start states (seed + 10,000) with the same network.
    assert result.summary["eval_mean_return"] >= 400.0, result.summary
    assert result.summary["executor"] == "ray" and result.summary["runner_restarts"] == 0


@pytest.mark.slow
def test_two_node_cluster_runs_the_same(ray_local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ray = ray_local
    from ray.cluster_utils import Cluster

    from dueldqn.executors import ray_apex as rx

    ray.shutdown()  # this test needs a cluster of its own (the last Ray test of the module)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    session = None
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        session = rx.session_dir()
        _, result = _run(tmp_path, "cluster", total_steps=3_000)
        ids = np.concatenate([shard["ids"] for shard in result.shards])
        assert len(ids) == result.state.transitions == len(np.unique(ids, axis=0))
        assert result.state.updates > 0 and result.versions[1][-1] > 0
        assert len(ray.nodes()) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
        if session is not None:
            rx.remove_session(session)
