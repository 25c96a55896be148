"""Replay speed: uniform ReplayBuffer against PrioritizedReplay over it, CartPole-sized transitions.

For capacities 100k and 1M of ``(4,)`` float32 observations, on a full buffer (priorities drawn at
random, so the tree is not flat): one cycle of a one-env loop that learns every 4 steps
(4 adds, a sample at batch 32 or 256 and, for prioritized replay, the priority update), the
median over ``--repeats`` timed blocks, in µs per cycle.

    python -m benchmarks.bench_replay              # about a minute on one core
    python -m benchmarks.bench_replay --quick --no-write
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks._report import write_section
from dueldqn.replay import PrioritizedReplay, ReplayBuffer

OBS_SHAPE = (4,)
CHUNK = 10_000  # transitions per add call while filling
ADDS = 4  # env steps per update in a cycle (DQN's train_frequency 4)


def _fill(replay: ReplayBuffer | PrioritizedReplay, capacity: int, rng: np.random.Generator) -> None:
    """Fill the buffer with random transitions, ``CHUNK`` envs at a time."""
    for start in range(0, capacity, CHUNK):
        n = min(CHUNK, capacity - start)
        obs = rng.normal(size=(n, *OBS_SHAPE)).astype(np.float32)
        replay.add(obs, rng.integers(0, 2, n), np.ones(n, np.float32), obs, np.zeros(n, bool), np.zeros(n, bool))


def _time(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` blocks of ``calls`` calls."""
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - start) / calls)
    return statistics.median(per_call)


def bench(capacity: int, calls: int, repeats: int, batch_sizes: tuple[int, ...]) -> list[tuple[str, int, float]]:
    """Rows ``(replay, batch size, seconds per cycle)`` at ``capacity``.

    A cycle is what a one-env loop that learns every ``ADDS`` steps does with its replay: ``ADDS``
    adds of one transition, one ``sample`` and, for prioritized replay, one ``update_priorities``.
    Prioritized replay applies new priorities to its tree when it is next read (once per sample),
    so timing ``add`` or ``update_priorities`` alone would only time appending to a list.
    """
    rng = np.random.default_rng(0)
    uniform = ReplayBuffer(capacity, OBS_SHAPE, np.float32)
    prioritized = PrioritizedReplay(ReplayBuffer(capacity, OBS_SHAPE, np.float32), alpha=0.6)
    _fill(uniform, capacity, rng)
    _fill(prioritized, capacity, rng)
    slots = np.arange(capacity)
    prioritized.update_priorities(prioritized.generation_S * capacity + slots, rng.exponential(size=capacity))

    obs_1 = rng.normal(size=(1, *OBS_SHAPE)).astype(np.float32)
    one = (obs_1, np.array([1]), np.ones(1, np.float32), obs_1, np.zeros(1, bool), np.zeros(1, bool))
    rows = []
    for b in batch_sizes:
        td_abs = rng.exponential(size=b)

        def uniform_cycle(b: int = b) -> None:
            for _ in range(ADDS):
                uniform.add(*one)
            uniform.sample(b, rng)

        def prioritized_cycle(b: int = b, td_abs: np.ndarray = td_abs) -> None:
            for _ in range(ADDS):
                prioritized.add(*one)
            batch = prioritized.sample(b, rng, beta=0.4)
            prioritized.update_priorities(batch.indices, td_abs)

        rows.append(("uniform", b, _time(uniform_cycle, calls, repeats)))
        rows.append(("prioritized", b, _time(prioritized_cycle, calls, repeats)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5_000, help="calls per timed block")
    parser.add_argument("--quick", action="store_true", help="100k only, 3 blocks of 500 calls (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    capacities = (100_000,) if args.quick else (100_000, 1_000_000)
    calls, repeats = (500, 3) if args.quick else (args.calls, args.repeats)

    lines = []
    for capacity in capacities:
        rows = bench(capacity, calls, repeats, (32, 256))
        cycle = {(name, b): seconds for name, b, seconds in rows}
        for name, b, seconds in rows:
            ratio = cycle[("uniform", b)] / seconds
            lines.append(f"| {capacity:,} | {name} | {b} | {seconds * 1e6:,.1f} | {ratio:.2f} |")
            print(lines[-1], flush=True)
    body = (
        f"One core, (4,) float32 observations, full buffers (random priorities); median of {repeats} blocks of "
        f"{calls:,} cycles. A cycle: {ADDS} adds of one transition, one sample and, for prioritized replay, one "
        "priority update (its IS weights and tickets included).\n\n"
        "| capacity | replay | batch | µs per cycle | uniform / this |\n"
        "|---|---|---|---|---|\n" + "\n".join(lines)
    )
    print(body)
    if not args.no_write:
        write_section("replay-speed", "Replay speed: uniform against prioritized", body)


if __name__ == "__main__":
    main()
