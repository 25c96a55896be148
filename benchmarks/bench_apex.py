"""Ape-X on Ray against the local executor: throughput by runner count, time to a score, per-part costs.

Part 1, throughput (CartPole-v1, or Breakout with ``--env ALE/Breakout-v5``): the env's preset
learner, ``--steps`` env steps per run, with N = 1, 2, 4 env runners of one env each (Ape-X:
runners never wait, the learner capped at the local loop's replay ratio) and the local executor
with one env. Env steps/s and updates/s are the median of the log rows after the first (actor
start-up, warm-up), so they are steady-state rates; scaling efficiency is E(N) = sps(N) / (N sps(1)).

Part 2, time to a score (CartPole only): the ``cartpole`` preset (40k steps) for the local
executor and for Ape-X with 2 runners of 2 envs and ``--runner-rate-limit`` (the local loop's replay
ratio), runners near the learner (chunks of 25 steps, weights every 10 updates, loaded at every
chunk): the ``cartpole-apex`` preset (prioritized 1-step), the preset's uniform 1-step replay and
prioritized 3-step, on ``--score-seeds`` seeds (``benchmarks/bench_apex_seeds.py`` runs one setting
on many seeds). Each run
checkpoints every 2,000 steps; after it, each checkpoint's greedy return (10 episodes) gives the
first step and wall second at a greedy 475, and the run's own final evaluation (20 episodes) its score.

Part 3, per-component figures for the 256-runner estimate: one replay shard's ingest rate, one
``ray.put`` of the weights and the learner's update rate on this CPU.

    pip install -e ".[ray]"
    python -m benchmarks.bench_apex                          # CartPole: about 15 minutes on 2 cores
    python -m benchmarks.bench_apex --env ALE/Breakout-v5    # Breakout throughput: about 10 minutes
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from benchmarks._report import write_section
from dueldqn.agent import Agent, build_from_spec
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import PRESETS, Config, resolve_config
from dueldqn.envs import make_eval_env
from dueldqn.evaluate import evaluate
from dueldqn.spaces import space_from_json
from dueldqn.training import train

BREAKOUT = "ALE/Breakout-v5"


def steady_rates(run_dir: Path) -> dict[str, float]:
    """Median env steps/s and updates/s over apex.csv's rows after the first; last samples per insert and lag."""
    rows = list(csv.DictReader((run_dir / "apex.csv").open()))[1:]
    return {
        "sps": statistics.median(float(r["env_steps_per_s"]) for r in rows),
        "ups": statistics.median(float(r["updates_per_s"]) for r in rows),
        "spi": float(rows[-1]["samples_per_insert"]),
        "lag": statistics.median(float(r["weight_lag"]) for r in rows),
    }


def local_steady_sps(run_dir: Path) -> float:
    """Median env steps/s of metrics.csv's train rows after the first (as :func:`steady_rates` does for Ape-X)."""
    rows = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["kind"] == "train"][1:]
    return statistics.median(float(r["steps_per_second"]) for r in rows)


def base_settings(env_id: str, steps: int) -> dict[str, Any]:
    """Part 1's settings: the env's preset learner, a short run; Breakout warms up on 1,000 steps, not 80,000."""
    base: dict[str, Any] = {"total_steps": steps, "eval_episodes": 1, "log_interval": 2_000, "checkpoint_every": 0}
    if env_id == BREAKOUT:
        base |= {"learning_starts": 1_000, "buffer_size": 50_000, "log_interval": 1_000}
    return base


def throughput(env_id: str, steps: int, runners: list[int], root: Path) -> list[dict[str, Any]]:
    """Part 1: one run per N, and the local executor, on the same settings."""
    base = base_settings(env_id, steps)
    config = resolve_config(env_id, None, dict(base))
    train(config, run_dir=root / "local", progress=False, tensorboard=False)
    sps = local_steady_sps(root / "local")
    out: list[dict[str, Any]] = [
        {
            "executor": "local",
            "n": 1,
            "sps": sps,
            "spi": None,
            "lag": None,
            "ups": sps * config.gradient_steps / config.train_frequency,
        }
    ]
    for n in runners:
        config = resolve_config(env_id, None, {**base, "executor": "ray", "num_env_runners": n})
        train(config, run_dir=root / f"ray{n}", progress=False, tensorboard=False)
        out.append({"executor": "ray", "n": n, **steady_rates(root / f"ray{n}")})
    return out


def rates_table(rates: list[dict[str, Any]]) -> list[str]:
    """The throughput table, with E(N) = sps(N) / (N sps(1))."""
    sps1 = next(r["sps"] for r in rates if r["executor"] == "ray" and r["n"] == 1)
    lines = [
        "| executor | runners N | env steps/s | updates/s | E(N) | samples per insert | weight lag (updates) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates:
        eff = f"{r['sps'] / (r['n'] * sps1):.2f}" if r["executor"] == "ray" else ""
        spi = "" if r["spi"] is None else f"{r['spi']:.1f}"
        lag = "" if r["lag"] is None else f"{r['lag']:.0f}"
        lines.append(f"| {r['executor']} | {r['n']} | {r['sps']:,.0f} | {r['ups']:,.1f} | {eff} | {spi} | {lag} |")
    return lines


SCORE = 475.0  # CartPole-v1's reward_threshold


def greedy_return(agent: Agent, config: Config, episodes: int) -> float:
    """Mean greedy return over ``episodes`` episodes on the final evaluation's env and seed (as ``tune`` checks)."""
    env = make_eval_env(config.env_id, seed=config.seed + 10_000)
    try:
        policy = lambda obs: int(agent.predict(obs, deterministic=True)[0])  # noqa: E731
        return evaluate(env, policy, episodes=episodes, seed=config.seed + 10_000).mean
    finally:
        env.close()


CHECK_EVERY = 2_000  # env steps between the checkpoints whose greedy return is checked


def first_reach(run_dir: Path, config: Config, episodes: int = 10) -> tuple[int | None, float | None]:
    """Env steps and run wall seconds of the first checkpoint whose greedy policy averages >= ``SCORE``.

    Checked after the run, from its checkpoints (every ``CHECK_EVERY`` steps, all kept), so the
    evaluations cost the run no time and the Ape-X run is not paused (a Ray run does not resume exactly).
    """
    checkpoints = sorted((load_checkpoint(p) for p in list_checkpoints(run_dir)), key=lambda c: c.step)
    for ckpt in checkpoints:
        spec = ckpt.meta["network"]
        q_net = build_from_spec(spec)
        online = {k.removeprefix("online."): v for k, v in ckpt.states["learner"].items() if k.startswith("online.")}
        q_net.load_state_dict(online)
        agent = Agent(q_net.eval(), space_from_json(spec["obs_space"]), int(spec["n_actions"]))
        if greedy_return(agent, config, episodes) >= SCORE:
            return ckpt.step, float(ckpt.states["loop"]["wall_seconds"])
    return None, None


RAY = {"executor": "ray", "runner_rate_limit": True, "num_env_runners": 2, "envs_per_runner": 2}
CLOSE = {"runner_chunk_steps": 25, "weight_sync_every": 10, "runner_sync_steps": 1}  # runners near the learner
PER3 = {"prioritized": True, "n_step": 3}
SCORE_RUNS = {  # name -> overrides of the cartpole preset
    "local": {},
    # The preset's learner and runners for the cartpole preset's 40k steps, without its stop at 475 (so that
    # every row trains as long); the preset itself stops there: BENCHMARKS.md, "stopping at a greedy 475".
    "ray: preset cartpole-apex (prioritized 1-step, runners near the learner)": {
        **PRESETS["cartpole-apex"],
        "total_steps": PRESETS["cartpole"]["total_steps"],
        "eval_every": 0,
        "stop_return": None,
    },
    "ray: the preset's uniform 1-step replay, runners near the learner": {**RAY, **CLOSE},
    "ray: prioritized 3-step, runners near the learner": {**RAY, **PER3, **CLOSE},
}


def time_to_score(root: Path, seeds: int) -> list[dict[str, Any]]:
    """Part 2: the preset by each of ``SCORE_RUNS`` on ``seeds`` seeds, in turn: time to a greedy 475, final score."""
    out = []
    for seed in range(seeds):
        for index, (name, extra) in enumerate(SCORE_RUNS.items()):
            overrides = {
                "eval_episodes": 20,
                "seed": seed,
                "checkpoint_every": CHECK_EVERY,
                "keep_checkpoints": 100,
                "save_replay": False,
                **extra,
            }
            config = resolve_config("CartPole-v1", None, overrides)
            run_dir = root / f"score-{index}-{seed}"
            start = time.perf_counter()
            result = train(config, run_dir=run_dir, progress=False, tensorboard=False)
            wall = time.perf_counter() - start
            steps_to, seconds_to = first_reach(run_dir, config)
            row = {
                "name": name,
                "seed": seed,
                "wall": wall,
                "score": result.summary["eval_mean_return"],
                "updates": result.summary["updates"],
                "steps_to": steps_to,
                "seconds_to": seconds_to,
            }
            print(row, flush=True)
            out.append(row)
    return out


def score_table(scores: list[dict[str, Any]]) -> list[str]:
    """One line per run kind: per-seed final scores, runs solved, median steps and seconds to a greedy 475."""
    lines = [
        "| run (cartpole preset, 40k steps; ray: 2 runners x 2 envs, --runner-rate-limit) "
        "| final greedy return per seed (20 episodes) "
        "| final >= 475 | reached a greedy 475 | median env steps to it | median wall s to it "
        "| median wall s (whole run) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in SCORE_RUNS:
        rows = [r for r in scores if r["name"] == name]
        if not rows:
            continue
        reached = [r for r in rows if r["steps_to"] is not None]
        steps = f"{statistics.median(r['steps_to'] for r in reached):,.0f}" if reached else "-"
        secs = f"{statistics.median(r['seconds_to'] for r in reached):.0f}" if reached else "-"
        finals = ", ".join(f"{r['score']:.1f}" for r in rows)
        lines.append(
            f"| {name} | {finals} "
            f"| {sum(r['score'] >= SCORE for r in rows)}/{len(rows)} | {len(reached)}/{len(rows)} | {steps} | {secs} "
            f"| {statistics.median(r['wall'] for r in rows):.0f} |"
        )
    return lines


def components(env_id: str) -> dict[str, float]:
    """Part 3: shard ingest (transitions/s through Ray), one weight put (ms) and the learner's updates/s."""
    from dueldqn.executors.apex import apex_network
    from dueldqn.executors.env_runner import EnvRunner, pack_frames
    from dueldqn.executors.replay_shard import ReplayShard
    from dueldqn.learner import Learner

    atari = env_id == BREAKOUT
    overrides = {"num_env_runners": 1, "envs_per_runner": 1 if atari else 4, "buffer_size": 50_000}
    config = resolve_config(env_id, None, overrides)
    net = apex_network(config, torch.device("cpu"))
    runner = EnvRunner(config, index=0, num_runners=1)
    chunks = [runner.collect(config.runner_chunk_steps) for _ in range(10 if atari else 20)]
    runner.envs.close()
    # What a runner actor sends: Atari's chunks with each frame once (FrameChunk), CartPole's as they are.
    sent = [pack_frames(c._replace(seq=i)) if net.frames else c._replace(seq=i) for i, c in enumerate(chunks)]
    chunk_bytes = sum(_nbytes(c) for c in sent)
    stack_bytes = sum(_nbytes(c) for c in chunks)  # the same chunks with obs and next_obs stacks
    kwargs: dict[str, Any] = {"index": 0, "obs_shape": net.obs_shape, "obs_dtype": net.obs_dtype, "frames": net.frames}
    shard: Any = ray.remote(ReplayShard).remote(config, **kwargs)  # an actor handle: its methods have .remote
    ray.get(shard.stats.remote())  # the actor is up: time the adds only
    start = time.perf_counter()
    ray.get([shard.add_chunk.remote(c) for c in sent])
    ingest = sum(c.transitions for c in chunks) / (time.perf_counter() - start)
    ray.kill(shard)
    learner = Learner(net.q_net, config, device=torch.device("cpu"), generator=torch.Generator())
    weights = learner.get_weights()
    put = min(_timed(lambda: ray.put(weights)) for _ in range(5))
    local = ReplayShard(config, **kwargs)
    for i, c in enumerate(chunks):
        local.add_chunk(c._replace(seq=i))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads if atari else 1)  # as the learner runs: an MLP on one thread
    try:
        batches = local.sample_many(50 if atari else 200, config.batch_size, 0.4) or []
        learner.update(batches[0], epsilon=0.0, lr=1e-4)  # warm-up (first call's allocations)
        start = time.perf_counter()
        for batch in batches[1:]:
            learner.update(batch, epsilon=0.0, lr=1e-4)
        ups = (len(batches) - 1) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    transitions = sum(c.transitions for c in chunks)
    return {
        "ingest": ingest,
        "put_ms": put * 1e3,
        "weights_mb": sum(v.nbytes for v in weights.params.values()) / 2**20,
        "ups": ups,
        "threads": threads if atari else 1,
        "bytes_per_transition": chunk_bytes / transitions,
        "stack_bytes_per_transition": stack_bytes / transitions,
        "batch": config.batch_size,
    }


def start_ray() -> None:
    """A local Ray of 2 CPUs without a dashboard, for a benchmark."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


def stop_ray() -> None:
    """Stop the benchmark's Ray and remove its session directory (logs and sockets under /tmp/ray)."""
    from dueldqn.executors.ray_apex import remove_session, session_dir

    session = session_dir()
    ray.shutdown()
    remove_session(session)


def _nbytes(chunk: Any) -> int:
    """Bytes of a chunk's arrays (a FrameChunk's, and those of the chunk it holds)."""
    return sum(_nbytes(a) if isinstance(a, tuple) else a.nbytes for a in chunk if isinstance(a, (np.ndarray, tuple)))


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", choices=["CartPole-v1", BREAKOUT], default="CartPole-v1")
    parser.add_argument("--steps", type=int, help="env steps per throughput run (default 30,000; Breakout 6,000)")
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--score-seeds", type=int, default=3, help="CartPole time-to-score seeds per executor")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    atari = args.env == BREAKOUT
    steps = args.steps or (6_000 if atari else 30_000)
    load_before = os.getloadavg()
    start_ray()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rates = throughput(args.env, steps, args.runners, Path(tmp))
            scores = [] if atari else time_to_score(Path(tmp), args.score_seeds)
            parts = components(args.env)
    finally:
        stop_ray()
    load = f"1-minute load average {load_before[0]:.2f} before the run, {os.getloadavg()[0]:.2f} after"
    sps1 = next(r["sps"] for r in rates if r["executor"] == "ray" and r["n"] == 1)
    lines = [f"Throughput: {steps:,} env steps per run; {load}.", "", *rates_table(rates)]
    if scores:
        lines += ["", *score_table(scores)]
    what = "Breakout chunks of 100 x 1, frames" if atari else "CartPole chunks of 100 x 4"
    net = "dueling Nature CNN" if atari else "CartPole MLP"
    lines += [
        "",
        "| component (this CPU) | measured |",
        "|---|---|",
        f"| one replay shard, ingest through Ray ({what}) | {parts['ingest']:,.0f} transitions/s |",
        f"| bytes a chunk carries per transition | {parts['bytes_per_transition']:,.0f} |",
        f"| `ray.put` of the {net} weights ({parts['weights_mb']:.2f} MB) | {parts['put_ms']:.2f} ms |",
        f"| learner updates/s ({net}, batch {parts['batch']}, {parts['threads']} CPU thread(s)) "
        f"| {parts['ups']:,.1f} |",
    ]
    notes = ATARI_NOTES if atari else NOTES
    body = (
        "\n".join(lines) + "\n\n" + notes + "\n" + (estimate_atari(sps1, parts) if atari else estimate_256(sps1, parts))
    )
    print(body)
    if args.no_write:
        return
    if atari:
        write_section("bench_apex-breakout", "Ape-X on Ray: throughput by runner count on Breakout", body)
    else:
        write_section("bench_apex", "Ape-X on Ray: throughput by runner count, time to a score", body)


NOTES = """\
Read with care: on a **2-core machine** Ray's driver (the learner), its raylet and GCS, the shard and
every runner share two cores, so the figures show overhead and overlap only, not scaling: with more
runners than cores, a runner's steps/s only measures its share of two cores.
Throughput rows are the median of the 2,000-step log rows after the first (the first holds the
actors' start-up; the local row likewise). Samples per insert is the replay ratio the learner reached
(the local loop's is 107 with this preset: batch 256, 5 updates every 12 steps); without
`--runner-rate-limit` runners never wait, so with more runners the learner falls behind.
Time to a score: each run checkpoints every 2,000 env steps (all kept, replay not saved); after the
run every checkpoint's network is evaluated greedily (10 episodes, the final evaluation's env and
seed), and the first at or above 475 gives the env steps and the run's wall seconds at that
checkpoint (for Ray, from before the actors start). A Ray run is not reproducible (chunk arrival
order, weight lag), so its seeds show spread, not a trajectory. Ray runners' rates anneal from 1 to
their Ape-X rates over the preset's 5,000 epsilon-decay steps, as the local loop's epsilon goes
from 1 to 0.04.
"""

ATARI_NOTES = """\
Breakout settings: the `breakout` preset's learner (batch 32, an update every 4 steps, lr 1e-4, the
dueling Nature CNN on the CPU) with 1,000 warm-up steps and a 50,000-transition replay, so that the
short runs learn; runners of one env each. Throughput rows are the median of the 1,000-step log rows
after the first (the warm-up and the actors' start-up). On this **2-core machine** the learner's
updates (torch on both cores), each runner's batch-1 CNN forward per step and its initial
priorities share the two cores, so the rows show how the work divides, not scaling. Samples per
insert is capped at the local loop's replay ratio (32 / 4 = 8).
"""


def estimate_256(sps1: float, parts: dict[str, float]) -> str:
    """On paper: what 256 CartPole runners would need, from the figures measured above."""
    cart_rate = 256 * sps1
    cart_shards = math.ceil(cart_rate / parts["ingest"])
    return f"""### 256 runners, on paper (CartPole; Atari in the Breakout section)

- **Replay**: 256 runners at the measured single-runner rate ({sps1:,.0f} env steps/s) would insert
  {cart_rate:,.0f} transitions/s; one shard took {parts["ingest"]:,.0f}/s here, so about
  **{cart_shards} shards** (runner r writes to shard r % S; `--replay-shards {cart_shards}`). That rate is for
  one-step rows, which a shard adds in one call per chunk; with `--n-step 3` it adds one vector step at a
  time and ingests less, not measured here.
- **Weights**: one `ray.put` of the MLP ({parts["weights_mb"]:.2f} MB) took {parts["put_ms"]:.2f} ms: negligible.
- **Learner**: {parts["ups"]:,.0f} updates/s of batch {parts["batch"]} on one CPU thread is
  {parts["ups"] * parts["batch"]:,.0f} sampled transitions/s, a replay ratio of
  {parts["ups"] * parts["batch"] / cart_rate:.2f} against 256 runners' inserts: one learner cannot keep
  up with them on CartPole; the runners would have to be rate-limited or the batch made larger.
"""


def estimate_atari(sps1: float, parts: dict[str, float]) -> str:
    """On paper: what 256 Atari runners would need, from the figures measured above."""
    rate = 256 * sps1
    shards = math.ceil(rate / parts["ingest"])
    pulls_per_s = sps1 / 400  # runners pick up weights every 400 steps (runner_sync_steps)
    node_bw = pulls_per_s * parts["weights_mb"] * (256 // RUNNERS_PER_NODE)
    need_ups = rate * 8 / parts["batch"]  # the local loop's replay ratio, 8 samples per insert
    return f"""### 256 Atari runners, on paper

From the figures above (CPU, this box; the per-runner rate is its share of 2 busy cores, so a
dedicated core would do more) and one assumption, marked:

- **Replay**: 256 runners at the measured single-runner rate ({sps1:,.0f} agent steps/s) insert
  {rate:,.0f} transitions/s. One frame shard took {parts["ingest"]:,.0f}/s here, so about **{shards} shard(s)**.
  A chunk carries {parts["bytes_per_transition"]:,.0f} bytes per transition (each frame once: the first
  stacks, one new frame per step, the stacks of new episodes; with obs and next_obs stacks it would be
  {parts["stack_bytes_per_transition"]:,.0f}), so 256 runners send
  {rate * parts["bytes_per_transition"] / 2**20:,.0f} MB/s to the shards.
- **Weights**: one `ray.put` of the Nature CNN ({parts["weights_mb"]:.1f} MB) took {parts["put_ms"]:.1f} ms.
  Runners pick up a version every 400 steps ({pulls_per_s:.2f} pulls/s each); Ray keeps one copy per
  node, so with {RUNNERS_PER_NODE} runners per node (assumption) the object store moves about
  {node_bw:,.1f} MB/s out of the learner's node (8 nodes).
- **Learner**: {parts["ups"]:,.1f} updates/s of batch {parts["batch"]} here on {parts["threads"]} CPU threads.
  Keeping the local loop's replay ratio (8) at 256 runners' inserts needs {need_ups:,.0f} updates/s: a GPU learner
  (not measured: no GPU on this box), a larger batch, or runners held back by `--runner-rate-limit`.
"""


RUNNERS_PER_NODE = 32  # assumption: 32-core runner nodes


if __name__ == "__main__":
    main()
