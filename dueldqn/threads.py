"""How many threads torch's intra-op pool gets in a training loop: fixed, or chosen by timing the loop.

A conv net's update (Atari) runs every convolution and matmul on torch's OpenMP pool, and each
operation ends at a barrier that waits for all of the pool's threads. With as many threads as
cores, a second busy process on the machine takes a core from one of them, and the update then
waits for the scheduler to bring that thread back at every operation: on a 2-core Xeon beside one
CPU-bound process, ``atari100k`` Breakout fell from 45.6 to about 8 env steps/s on 2 threads,
where 1 thread kept 26. No count is right for every moment of a shared machine, so ``auto`` times it:

- it starts from the cores in the process's affinity set that are not busy (``/proc/stat``);
- at the first update it *probes*: it times :data:`WINDOW` updates on each candidate count
  (1, 2, 4, ... up to the cores) and keeps the fastest, by the mean time between updates without
  the :data:`TRIM` longest (a checkpoint or a log row inside a window is left out, but not the
  many short stalls of a thread the scheduler took away, which are what a shared machine costs:
  the median did not: beside 2 busy processes it kept 2 threads at 16.6 env steps/s where 1 gave 23.4);
- it probes again after :data:`RECHECK` updates (load that went away), a gap that doubles after each
  probe that keeps the count (up to :data:`MAX_RECHECK`), and at once when a window is :data:`SLOWDOWN`
  times slower than the count's probe (load that came).

Floats: the thread count changes how oneDNN splits some reductions (batch-32 DuelDQN updates on 1
and 2 threads differ in the last bits on an Intel Xeon), so an ``auto`` run is reproducible only
with the same thread schedule. The schedule (update, threads) is in every checkpoint and the count
in each ``train`` row of ``metrics.csv``; a resumed run goes on with the count it had. For runs
that must be bit-identical on one machine, fix the count (``--torch-threads N``): a fixed count
never changes. Small MLPs and the numpy path use one thread (their ops are too small to split).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from threadpoolctl import threadpool_limits

WINDOW = 30  # updates timed per candidate in a probe, and per check of the chosen count
TRIM = 2  # the longest gaps of a window left out of its mean (a checkpoint, a log row)
SETTLE = 2  # updates after a change of count that are not timed (the pool wakes its threads)
RECHECK = 2_000  # updates between probes, doubled after each probe that keeps the count ...
MAX_RECHECK = 16_000  # ... up to this: a probe of a bad count costs (32 updates, 8x slower beside a busy process)
SLOWDOWN = 1.5  # a window this much slower than the chosen count's probe starts a probe at once


def available_cores() -> int:
    """Cores this process may run on (its affinity set, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def busy_cores(interval: float = 0.05) -> float:
    """How many cores the machine kept busy over ``interval`` seconds (``/proc/stat``); 0 where unknown."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 == total0:
        return 0.0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def candidate_counts(cores: int) -> tuple[int, ...]:
    """The counts a probe tries: 1, 2, 4, ... and ``cores`` itself."""
    counts = {cores}
    n = 1
    while n < cores:
        counts.add(n)
        n *= 2
    return tuple(sorted(counts))


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """torch on ``threads`` threads inside the block (``None``: unchanged), the count before it restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def window_time(gaps: list[float]) -> float:
    """Seconds per update over a window: the mean of its gaps without the :data:`TRIM` longest."""
    kept = sorted(gaps)[: max(1, len(gaps) - TRIM)]
    return sum(kept) / len(kept)


class ThreadPolicy:
    """torch's thread count for one training loop; a context manager that restores the count it found.

    Args:
        fixed: a count to keep (``--torch-threads N``); 0 lets the policy choose.
        conv: the network is a conv net (Atari): ``fixed == 0`` then means ``auto``; otherwise one thread
            for torch and numpy's BLAS (small MLPs lose time to fork/join in every op).
        cores: the cores to use at most (default: :func:`available_cores`).
        busy: cores already busy when the run starts (default: :func:`busy_cores`), for the first count.
        clock: seconds, for the timings (a test passes a fake clock).

    ``after_update()`` is called by the loop after each gradient update; it is where the count can change.
    """

    def __init__(
        self,
        fixed: int,
        conv: bool,
        *,
        cores: int | None = None,
        busy: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if fixed < 0:
            raise ValueError(f"torch_threads must be >= 0 (0: chosen by the run), got {fixed}")
        self.conv = conv
        self.auto = conv and fixed == 0
        self.fixed = fixed
        self.clock = clock
        cores = cores if cores is not None else available_cores()
        if self.auto:
            self.candidates = candidate_counts(cores)
            idle = cores - (busy_cores() if busy is None else busy)
            self.current = min(cores, max(1, round(idle)))
        else:
            self.candidates = (fixed or 1,)
            self.current = fixed or 1
        self.schedule: list[tuple[int, int]] = []  # (update, threads) at each change; the first is the start
        self._probe: list[int] = []  # counts still to time in this probe
        self._probed: dict[int, float] = {}  # count -> seconds per update (window_time)
        self._baseline: float | None = None  # the chosen count's probe time
        self._since_probe = 0  # updates since the last probe ended
        self._recheck = RECHECK  # updates from one probe to the next
        self._before_probe = self.current  # the count a probe started from
        self._settle = 0  # updates still to skip after a change
        self._last: float | None = None  # the clock at the previous update
        self._gaps: list[float] = []  # seconds between updates in the current window
        self._original: int | None = None
        self._blas: Any = None

    @classmethod
    def for_run(cls, torch_threads: int, conv: bool, device: torch.device) -> ThreadPolicy:
        """The policy of a training run: ``auto`` for conv nets on the CPU; on a GPU (which does the maths, and
        whose asynchronous updates a CPU clock cannot time) a conv net keeps the CPU's cores unless told."""
        if conv and device.type != "cpu" and torch_threads == 0:
            torch_threads = available_cores()
        return cls(torch_threads, conv)

    # -- the context: set the count, restore the one found -------------------------------------------------
    def __enter__(self) -> ThreadPolicy:
        self._original = torch.get_num_threads()
        if not self.conv:  # numpy's BLAS too: a fixed count also keeps its sums independent of the machine
            self._blas = threadpool_limits(limits=self.fixed or 1, user_api="blas")
        self._set(self.current, update=None)
        if self.auto:
            self._start_probe()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._blas is not None:  # first: it restores every thread pool it saw, OpenMP's too
            self._blas.restore_original_limits()
            self._blas = None
        if self._original is not None:
            torch.set_num_threads(self._original)

    def _set(self, threads: int, update: int | None) -> None:
        if update is not None and threads != self.current:
            self._settle, self._last = SETTLE, None
        self.current = threads
        torch.set_num_threads(threads)
        if not self.schedule or self.schedule[-1][1] != threads:
            self.schedule.append((update or 0, threads))

    def _start_probe(self) -> None:
        """Time the current count first (no change needed), then the others."""
        self._probe = [self.current, *(c for c in self.candidates if c != self.current)]
        self._before_probe = self.current
        self._probed = {}
        self._gaps, self._last = [], None

    # -- the loop's hook --------------------------------------------------------------------------------
    def after_update(self, updates: int) -> None:
        """One more gradient update was made (``updates`` in all): time it, and change the count when due."""
        if not self.auto:
            return
        now = self.clock()
        if self._settle > 0:
            self._settle -= 1
            self._last = now
            return
        if self._last is not None:
            self._gaps.append(now - self._last)
        self._last = now
        if len(self._gaps) < WINDOW:
            return
        seconds = window_time(self._gaps)
        self._gaps = []
        if self._probe:  # probing: note this count's time, go on to the next count or choose
            self._probed[self._probe.pop(0)] = seconds
            if self._probe:
                self._set(self._probe[0], updates)
                return
            best = min(self._probed, key=lambda c: (self._probed[c], c))
            self._baseline, self._since_probe = self._probed[best], 0
            self._recheck = min(2 * self._recheck, MAX_RECHECK) if best == self._before_probe else RECHECK
            self._set(best, updates)
            return
        self._since_probe += WINDOW
        if self._since_probe >= self._recheck or (self._baseline is not None and seconds > SLOWDOWN * self._baseline):
            self._start_probe()

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The count now and the schedule so far (timings are not kept: a resumed run probes again)."""
        return {"threads": self.current, "schedule": [list(s) for s in self.schedule]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on with the count the run had; ``auto`` probes again from there (the machine may have changed)."""
        self.schedule = [(int(u), int(t)) for u, t in state["schedule"]]
        if self.auto:
            self.current = min(int(state["threads"]), max(self.candidates))
            if self._original is not None:  # already entered: the count takes effect now
                torch.set_num_threads(self.current)
            self._start_probe()
