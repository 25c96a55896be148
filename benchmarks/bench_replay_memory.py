"""Replay memory for Atari frames: bytes per transition and peak RSS, frame replay against naive.

Each measurement runs in its own subprocess, which fills one buffer through ``add`` with a
stream of random ``(4, 84, 84)`` uint8 stacks (touching all of its memory, wrapping the ring
once) and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` before and after. Episodes end
at random, one step in 500 on average, followed by gymnasium's autoreset step (not stored), so
the frame replay pays its episode-start slots as it would on Atari lives. The naive
:class:`~dueldqn.replay.ReplayBuffer` is measured at 100k only; at 1M its 56 GB are computed.

Run: ``python benchmarks/bench_replay_memory.py`` (about two minutes; 7 GB of RAM for 1M).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

OBS_SHAPE = (4, 84, 84)
CAPACITIES = (100_000, 1_000_000)
NAIVE_MEASURED = 100_000
MEAN_EPISODE = 500
ROOT = Path(__file__).resolve().parent.parent


def naive_bytes_per_transition(obs_shape: tuple[int, ...] = OBS_SHAPE) -> int:
    """``ReplayBuffer``'s bytes per transition: ``obs`` and ``next_obs`` (uint8), int64 action,
    float32 reward and float32 terminated."""
    return 2 * int(np.prod(obs_shape)) + 8 + 4 + 4


def _stream(steps: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
    """``add`` arguments of one env: random frames, episodes ending one step in ``MEAN_EPISODE``."""
    pool = rng.integers(0, 256, size=(1021, *OBS_SHAPE[1:]), dtype=np.uint8)
    ends = rng.random(steps) < 1 / MEAN_EPISODE
    obs = np.repeat(pool[0][None, None], OBS_SHAPE[0], axis=1)  # a reset stack, (1, 4, 84, 84)
    actions, rewards, no, yes = np.zeros(1, np.int64), np.ones(1, np.float32), np.zeros(1, bool), np.ones(1, bool)
    ended = False
    for t in range(steps):
        frame = pool[(t + 1) % len(pool)][None, None]
        if ended:  # the autoreset step: a fresh reset stack, never stored
            nxt = np.repeat(frame, OBS_SHAPE[0], axis=1)
            yield obs, actions, rewards, nxt, no, no, no
        else:
            nxt = np.concatenate([obs[:, 1:], frame], axis=1)
            yield obs, actions, rewards, nxt, ends[t : t + 1], no, yes
        ended = not ended and bool(ends[t])
        obs = nxt


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(kind: str, capacity: int) -> dict[str, float]:
    """Fill one buffer in this process and return its sizes and peak RSS."""
    from dueldqn.replay import FrameReplayBuffer, ReplayBuffer

    rng = np.random.default_rng(0)
    steps = capacity + capacity // 10  # wrap once
    stream = _stream(steps, rng)
    baseline = _maxrss_bytes()
    buf: FrameReplayBuffer | ReplayBuffer
    if kind == "frame":
        buf = FrameReplayBuffer(capacity, OBS_SHAPE, np.uint8, num_envs=1)
        allocated = buf.nbytes
    else:
        buf = ReplayBuffer(capacity, OBS_SHAPE, np.uint8)
        allocated = sum(a.nbytes for a in (buf.obs, buf.next_obs, buf.actions, buf.rewards, buf.terminated))
    start = time.perf_counter()
    for args in stream:
        buf.add(*args)
    seconds = time.perf_counter() - start
    buf.sample(32, rng)
    return {
        "allocated": allocated,
        "stored": len(buf),
        "baseline_rss": baseline,
        "peak_rss": _maxrss_bytes(),
        "fill_us_per_step": seconds / steps * 1e6,
    }


def measure(kind: str, capacity: int) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter, so that each peak RSS is its own."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(capacity)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, capacity: int, r: dict[str, float]) -> str:
    over = r["peak_rss"] - r["baseline_rss"]
    return (
        f"| {name} | {capacity:,} | {r['allocated'] / capacity:,.1f} | {r['stored']:,} | "
        f"{r['allocated'] / r['stored']:,.1f} | {r['peak_rss'] / 2**30:.2f} GiB | {over / 2**30:.2f} GiB | "
        f"{over / r['stored']:,.0f} | {r['fill_us_per_step']:.0f} |"
    )


def main() -> None:
    """Measure every buffer and write the ``replay-memory`` section of BENCHMARKS.md."""
    sys.path.insert(0, str(ROOT))
    from benchmarks._report import write_section

    rows = []
    for capacity in CAPACITIES:
        r = measure("frame", capacity)
        print(f"frame {capacity}: {r}", flush=True)
        rows.append(_row("`FrameReplayBuffer`", capacity, r))
    r = measure("naive", NAIVE_MEASURED)
    print(f"naive {NAIVE_MEASURED}: {r}", flush=True)
    rows.append(_row("`ReplayBuffer` (naive)", NAIVE_MEASURED, r))
    naive = naive_bytes_per_transition()
    header = (
        "| buffer | capacity | allocated bytes / capacity | transitions stored | allocated bytes / stored "
        "| peak RSS | RSS over baseline | RSS bytes / stored | fill µs / step, stream included |"
    )
    computed = (
        f"| `ReplayBuffer` (naive), computed | 1,000,000 | {naive:,} | 1,000,000 | {naive:,} "
        f"| {naive * 1e6 / 2**30:.1f} GiB | | | |"
    )
    body = f"""
Observations `(4, 84, 84)` uint8, one env; each buffer is filled through `add` with random frames
until its ring has wrapped once (capacity + 10% steps), episodes ending one step in
{MEAN_EPISODE} on average (each followed by the autoreset step, not stored). One subprocess per
row; RSS is `ru_maxrss`, "over baseline" subtracts the interpreter and its imports.

{header}
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
{computed}

`FrameReplayBuffer` keeps 7,064 B per slot (frame 7,056 + int16 action 2 + float32 reward 4 +
depth 1 + flags 1); the naive buffer keeps both stacks, {naive:,} B per transition, 8.0x more.
A full frame replay stores slightly fewer transitions than its capacity: one slot per episode
start and the 4 oldest slots per env hold none.
"""
    write_section("replay-memory", "Replay memory for Atari frames", body)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
