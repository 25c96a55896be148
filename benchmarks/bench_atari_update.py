"""What one Atari 100k update costs on this CPU, with and without each speed option, and where a loop step goes.

Part 1, the update: the spec's DuelDQN (4 actions), batch 32, Huber loss, Adam (lr 1e-4, eps 1.5e-4),
10-step targets (per-transition ``gamma^k``) bootstrapped from the online network (DrQ's target =
online, so one no-grad forward of ``s'``, one forward and backward of ``s``), through
:class:`dueldqn.learner.Learner` exactly as training runs it, on random uint8 frames. Variants:
NCHW against channels_last weights, 1 against all torch threads, DrQ augmentation off and on,
``torch.compile`` of the network (its compile time and whether it pays back within 100k updates),
bf16 autocast. Each variant runs ``--updates`` timed updates after 5 untimed ones, ``--repeats``
times in turn with the others; the median ms per update is reported with the spread, in wall time
and in this process's CPU time (all its threads): on a machine busy with other work the CPU time
is the steadier guide, on a quiet one the wall time is what a run takes.

Part 2, a loop step: the atari100k preset's own loop on Breakout, timed part by part over
``--loop-steps`` steps after a 200-step warm-up (act, env step, replay add, sample with the 10-step
fold and the stack rebuild, update, target sync), and ``train()`` itself over the same number of
steps (its env steps/s from metrics.csv), whose difference to the parts' sum is the loop's
bookkeeping.

    python -m benchmarks.bench_atari_update             # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._report import write_section
from dueldqn import DuelDQN
from dueldqn.augment import augment
from dueldqn.config import resolve_config
from dueldqn.learner import Learner
from dueldqn.replay import Batch

ENV_ID = "ALE/Breakout-v5"
UPDATES_PER_RUN = 100_000


def _batches(count: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        frames = rng.integers(0, 256, size=(32, 5, 84, 84), dtype=np.uint8)
        out.append(
            Batch(
                frames[:, :4].copy(),
                rng.integers(0, 4, 32),
                rng.normal(size=32).astype(np.float32),
                frames[:, 1:].copy(),
                (rng.random(32) < 0.05).astype(np.float32),
                discounts=(0.99 ** rng.integers(1, 11, 32)).astype(np.float32),
            )
        )
    return out


def _learner(*, channels_last: bool, augment_on: bool, compiled: bool) -> Learner:
    torch.manual_seed(0)
    net: torch.nn.Module = DuelDQN()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if compiled:
        net = torch.compile(net)  # type: ignore[assignment]
    config = resolve_config(ENV_ID, "atari100k", {"augment": augment_on})
    return Learner(net, config, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def _clocks() -> np.ndarray:
    """Wall and process CPU time in ms."""
    return np.array([time.perf_counter(), time.process_time()]) * 1e3


def _time_updates(learner: Learner, batches: list[Batch], n: int, bf16: bool) -> np.ndarray:
    """(wall, CPU) ms per update over ``n`` updates."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = _clocks()
    with context:
        for i in range(n):
            learner.update(batches[i % len(batches)], epsilon=0.01, lr=1e-4).loss.item()
    return (_clocks() - start) / n


VARIANTS: dict[str, dict[str, bool | int]] = {  # threads 0: all cores
    "NCHW": {"channels_last": False, "augment": False},
    "NCHW + augment": {"channels_last": False, "augment": True},
    "channels_last": {"channels_last": True, "augment": False},
    "channels_last + augment": {"channels_last": True, "augment": True},
    "channels_last + augment, 1 thread": {"channels_last": True, "augment": True, "threads": 1},
    "channels_last + augment, bf16 autocast": {"channels_last": True, "augment": True, "bf16": True},
    "NCHW + augment, torch.compile": {"channels_last": False, "augment": True, "compiled": True},
    "channels_last + augment, torch.compile": {"channels_last": True, "augment": True, "compiled": True},
}


def bench_updates(
    updates: int, repeats: int, variants: list[str]
) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """(wall, CPU) ms per update of each variant per repeat, and each compiled variant's compile seconds."""
    batches, cores = _batches(8), torch.get_num_threads()
    learners, compile_s = {}, {}
    for name in variants:
        v = VARIANTS[name]
        torch.set_num_threads(int(v.get("threads", 0)) or cores)
        learners[name] = _learner(
            channels_last=bool(v["channels_last"]),
            augment_on=bool(v["augment"]),
            compiled=bool(v.get("compiled", False)),
        )
        start = time.perf_counter()
        _time_updates(learners[name], batches, 5, bool(v.get("bf16", False)))  # compiles, warms the caches
        if v.get("compiled"):
            compile_s[name] = time.perf_counter() - start
    results: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:
            torch.set_num_threads(int(VARIANTS[name].get("threads", 0)) or cores)
            results[name].append(_time_updates(learners[name], batches, updates, bool(VARIANTS[name].get("bf16"))))
        print({k: np.round(v[-1], 2).tolist() for k, v in results.items()}, flush=True)
    torch.set_num_threads(cores)
    return results, compile_s


def bench_augment(repeats: int) -> list[np.ndarray]:
    """(wall, CPU) ms to augment one s and one s' batch (32 x 4 x 84 x 84 uint8)."""
    batch, g = _batches(1)[0], torch.Generator().manual_seed(0)
    obs, next_obs = torch.from_numpy(batch.obs), torch.from_numpy(batch.next_obs)
    out = []
    for _ in range(repeats):
        start = _clocks()
        for _ in range(50):
            augment(obs, g), augment(next_obs, g)
        out.append((_clocks() - start) / 50)
    return out


def bench_loop(steps: int) -> dict[str, np.ndarray]:
    """(wall, CPU) ms per env step of each part of the atari100k loop (epsilon 0.01), after 200 warm-up steps."""
    from dueldqn.actor import Actor
    from dueldqn.envs import make_vec_env
    from dueldqn.exploration import ExplorationDraws
    from dueldqn.replay import FrameReplayBuffer

    config = resolve_config(ENV_ID, "atari100k", {"seed": 0})
    envs = make_vec_env(ENV_ID, 1, 0, "gymnasium")
    learner = _learner(channels_last=True, augment_on=True, compiled=False)
    actor = Actor(learner.online, 4, draws=ExplorationDraws(0, 1), device=torch.device("cpu"))
    replay = FrameReplayBuffer(10_000, (4, 84, 84), np.uint8, n_step=config.n_step, gamma=config.gamma)
    rng = np.random.default_rng(0)
    obs_NO, _ = envs.reset(seed=0)
    autoreset_N = np.zeros(1, dtype=bool)
    names = [
        "act",
        "env step",
        "replay add",
        "sample (10-step fold, stacks)",
        "update (to tensors, augment, fwd/bwd, Adam)",
        "target sync",
    ]
    parts = {name: np.zeros(2) for name in names}
    for step in range(200 + steps):
        timed = step >= 200
        t0 = _clocks()
        actions_N = actor.act(obs_NO, 0.01 if timed else 1.0, step)
        t1 = _clocks()
        next_obs_NO, rewards_N, terminated_N, truncated_N, _ = envs.step(actions_N)
        t2 = _clocks()
        replay.add(obs_NO, actions_N, rewards_N, next_obs_NO, terminated_N, truncated_N, ~autoreset_N)
        autoreset_N, obs_NO = terminated_N | truncated_N, next_obs_NO
        t3 = _clocks()
        if not timed:
            continue
        batch = replay.sample(32, rng)
        t4 = _clocks()
        learner.update(batch, epsilon=0.01, lr=1e-4).loss.item()
        t5 = _clocks()
        learner.sync_target(1.0)
        t6 = _clocks()
        for name, (a, b) in zip(names, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)], strict=True):
            parts[name] += (b - a) / steps
    envs.close()
    return parts


def bench_train(steps: int) -> float:
    """ms per env step of ``train()`` with the atari100k preset after its warm-up, from its metrics.csv."""
    from dueldqn.training import train

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train(
            env_id=ENV_ID,
            preset="atari100k",
            run_dir=run,
            progress=False,
            tensorboard=False,
            total_steps=200 + steps,
            learning_starts=200,
            epsilon_decay_start=0,
            epsilon_decay_steps=1,
            log_interval=50,
            checkpoint_every=0,
            save_replay=False,
            eval_episodes=1,
            eval_epsilon=1.0,
        )
        with (run / "metrics.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "train" and int(r["step"]) > 250]
    return statistics.median(1e3 / float(r["steps_per_second"]) for r in rows)


def _median(values: list[np.ndarray]) -> np.ndarray:
    """Median (wall, CPU) over repeats."""
    return np.median(np.stack(values), axis=0)


def _row(name: str, values: list[np.ndarray], baseline: np.ndarray) -> str:
    wall, cpu = _median(values)
    walls = [v[0] for v in values]
    return (
        f"| {name} | {wall:.2f} | {min(walls):.2f}-{max(walls):.2f} | {cpu:.2f} | {baseline[0] / wall:.2f}x | "
        f"{baseline[1] / cpu:.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=40, help="timed updates per variant and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-steps", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=["compile", "bf16", "loop", "train"])
    parser.add_argument("--note", default="", help="a line about the conditions (e.g. 'contended: 4 other jobs')")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()

    variants = [
        n
        for n in VARIANTS
        if not ("compile" in args.skip and "compile" in n) and not ("bf16" in args.skip and "bf16" in n)
    ]
    results, compile_s = bench_updates(args.updates, args.repeats, variants)
    aug = _median(bench_augment(args.repeats))
    base = _median(results["NCHW"])
    lines = [
        f"### One update (batch 32), torch threads {torch.get_num_threads()} unless said",
        "",
        "| variant | wall ms per update (median) | wall range | CPU ms per update (median) | NCHW / this (wall) "
        "| NCHW / this (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_row(name, values, base) for name, values in results.items()]
    lines += ["", f"DrQ augmentation of s and s' alone: {aug[0]:.2f} ms wall, {aug[1]:.2f} ms CPU per update."]
    for name, seconds in compile_s.items():
        eager = name.removesuffix(", torch.compile")
        saved_ms = float(_median(results[eager])[0] - _median(results[name])[0])
        payback = f"pays back after {seconds * 1e3 / saved_ms:,.0f} updates" if saved_ms > 0 else "never pays back"
        lines.append(
            f"`{name}`: first 5 updates (compilation) {seconds:.1f} s; saves {saved_ms:+.2f} ms per update "
            f"against eager `{eager}`: {payback} ({UPDATES_PER_RUN:,} in a run)."
        )
    if "loop" not in args.skip:
        parts = bench_loop(args.loop_steps)
        total = np.sum(list(parts.values()), axis=0)  # (wall, CPU) ms
        lines += [
            "",
            f"### One loop step of the atari100k preset ({ENV_ID}, epsilon 0.01, 1 update per step)",
            "",
            "| part | wall ms per env step | CPU ms | share of the wall time |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {ms[0]:.2f} | {ms[1]:.2f} | {ms[0] / total[0]:.0%} |" for name, ms in parts.items()]
        lines.append(f"| sum of the parts | {total[0]:.2f} | {total[1]:.2f} | |")
        if "train" not in args.skip:
            ms = bench_train(args.loop_steps)
            lines.append(
                f"| `train()` itself (wall, median of its 50-step log rows) | {ms:.2f} | | "
                f"{ms / total[0]:.2f}x the sum |"
            )
        lines.append(f"\nAt this pace 100k steps take {total[0] * UPDATES_PER_RUN / 6e4:.0f} min of loop (wall).")
    body = (args.note + "\n\n" if args.note else "") + "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("atari-update", "Atari 100k: the cost of one update and of one loop step (CPU)", body)


if __name__ == "__main__":
    main()
