"""The thread policy: a fixed count never moves; ``auto`` keeps the count its timings say is fastest.

The timings come from a fake clock whose seconds per update depend on torch's thread count at the
moment, so every choice and every entry of the schedule can be computed by hand (a window's time is
the mean of its gaps without the TRIM longest):
a probe times WINDOW gaps (WINDOW + 1 updates on the first count, whose first update only starts
the clock), then each other count after SETTLE untimed updates.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from threadpoolctl import threadpool_info

from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.logger import read_metrics
from dueldqn.threads import MAX_RECHECK, RECHECK, SETTLE, WINDOW, ThreadPolicy, available_cores, candidate_counts
from dueldqn.training import train


class World:
    """A clock on which one update takes ``seconds[threads]``: the machine as the policy sees it."""

    def __init__(self, seconds: dict[int, float]) -> None:
        self.seconds, self.now = dict(seconds), 0.0

    def __call__(self) -> float:
        self.now += self.seconds[torch.get_num_threads()]
        return self.now


def drive(policy: ThreadPolicy, first: int, last: int) -> None:
    for update in range(first, last + 1):
        policy.after_update(update)


FIRST_PROBE_ENDS = WINDOW + 1  # the count it started on: one update to start the clock, then WINDOW gaps
SECOND_PROBE_ENDS = FIRST_PROBE_ENDS + SETTLE + WINDOW  # the last untimed update starts the clock
QUIET_AFTER = SECOND_PROBE_ENDS + SETTLE  # where the windows on the chosen count start, after a change


def test_candidates_are_powers_of_two_and_the_cores() -> None:
    assert candidate_counts(1) == (1,)
    assert candidate_counts(2) == (1, 2)
    assert candidate_counts(6) == (1, 2, 4, 6)
    assert candidate_counts(16) == (1, 2, 4, 8, 16)


@pytest.mark.parametrize(("busy", "first"), [(0.0, 4), (1.0, 3), (2.6, 1), (9.0, 1)])
def test_auto_starts_from_the_cores_not_busy(busy: float, first: int) -> None:
    assert ThreadPolicy(0, conv=True, cores=4, busy=busy).current == first


def test_a_fixed_count_is_set_kept_and_restored() -> None:
    before = torch.get_num_threads()
    world = World({1: 0.01, 2: 0.01, 3: 0.01})
    with ThreadPolicy(3, conv=True, cores=2, clock=world) as policy:
        assert torch.get_num_threads() == 3
        drive(policy, 1, 5 * RECHECK)
        assert torch.get_num_threads() == 3
        assert policy.schedule == [(0, 3)]
    assert torch.get_num_threads() == before


def test_an_mlp_runs_torch_and_blas_on_one_thread() -> None:
    with ThreadPolicy(0, conv=False, cores=2):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")


def test_quiet_machine_keeps_all_cores_after_timing_one_thread() -> None:
    world = World({1: 0.030, 2: 0.018})  # alone: 2 threads are faster
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world) as policy:
        drive(policy, 1, FIRST_PROBE_ENDS)
        assert torch.get_num_threads() == 1  # timed 2, now timing 1
        drive(policy, FIRST_PROBE_ENDS + 1, SECOND_PROBE_ENDS)
        assert torch.get_num_threads() == 2
        assert policy.schedule == [(0, 2), (FIRST_PROBE_ENDS, 1), (SECOND_PROBE_ENDS, 2)]


def test_beside_a_busy_process_it_moves_to_one_thread_and_stays() -> None:
    world = World({1: 0.040, 2: 0.120})  # one core taken: 2 threads wait on each other at every op
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world) as policy:
        drive(policy, 1, SECOND_PROBE_ENDS + RECHECK // 2)
        assert torch.get_num_threads() == 1
        assert policy.schedule == [(0, 2), (FIRST_PROBE_ENDS, 1)]  # chose the count it was timing: no change


class StallingWorld(World):
    """Two threads beside busy processes: most updates fast, every third one stalled for a timeslice."""

    def __init__(self) -> None:
        super().__init__({1: 0.025, 2: 0.010})
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if torch.get_num_threads() == 2 and self.calls % 3 == 0:
            self.now += 0.080  # a thread taken off its core: the whole update waits for it
        return super().__call__()


def test_short_stalls_count_so_one_steady_thread_wins() -> None:
    # 2 threads: median gap 0.010 s but mean 0.0367 s; 1 thread: 0.025 s every time. Throughput is the mean.
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=StallingWorld()) as policy:
        drive(policy, 1, SECOND_PROBE_ENDS + 5 * WINDOW)
        assert torch.get_num_threads() == 1
        assert policy.schedule == [(0, 2), (FIRST_PROBE_ENDS, 1)]


def test_load_that_arrives_mid_run_starts_a_probe_at_once() -> None:
    world = World({1: 0.030, 2: 0.018})
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world) as policy:
        drive(policy, 1, QUIET_AFTER + 3 * WINDOW)  # chose 2, three quiet windows since
        assert torch.get_num_threads() == 2
        world.seconds = {1: 0.040, 2: 0.120}  # a CPU-bound process starts
        # the next window is slow: a probe times 2 again (WINDOW + 1 updates), then 1 (SETTLE + WINDOW)
        moved = QUIET_AFTER + 3 * WINDOW + WINDOW + WINDOW + 1
        drive(policy, QUIET_AFTER + 3 * WINDOW + 1, moved + SETTLE + WINDOW)
        assert torch.get_num_threads() == 1
        assert policy.schedule[-2:] == [(SECOND_PROBE_ENDS, 2), (moved, 1)]


def test_load_that_goes_away_is_found_at_the_next_recheck() -> None:
    world = World({1: 0.040, 2: 0.120})
    with ThreadPolicy(0, conv=True, cores=2, busy=1.0, clock=world) as policy:  # starts on 1 (one core busy)
        drive(policy, 1, 3 * WINDOW)
        assert torch.get_num_threads() == 1
        assert policy.schedule == [(0, 1), (FIRST_PROBE_ENDS, 2), (SECOND_PROBE_ENDS, 1)]
        world.seconds = {1: 0.030, 2: 0.018}  # the other process ends: 1 thread is no slower than before
        # the first probe kept 1 thread, so the next comes after twice RECHECK updates
        drive(policy, 3 * WINDOW + 1, 2 * RECHECK)
        assert torch.get_num_threads() == 1  # nothing got slower, so nothing is re-timed before the recheck
        drive(policy, 2 * RECHECK + 1, 3 * RECHECK)
        assert torch.get_num_threads() == 2


def test_probes_that_keep_the_count_come_less_often() -> None:
    world = World({1: 0.040, 2: 0.120})  # beside a busy process for good: each probe times 2 threads again
    with ThreadPolicy(0, conv=True, cores=2, busy=1.0, clock=world) as policy:
        drive(policy, 1, 20 * MAX_RECHECK)
        probes = [update for update, threads in policy.schedule if threads == 2]  # each probe's switch to 2
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert len(probes) >= 5 and all(b >= a for a, b in itertools.pairwise(gaps))  # gaps grow ...
        assert max(gaps) <= MAX_RECHECK + 4 * WINDOW  # ... to MAX_RECHECK (plus the windows of a probe)
        assert 2 * (WINDOW + SETTLE) * len(probes) < 0.03 * 20 * MAX_RECHECK  # probing stays a small cost


def test_one_long_gap_in_a_window_does_not_move_the_count() -> None:
    world = World({1: 0.030, 2: 0.018})
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world) as policy:
        drive(policy, 1, QUIET_AFTER + 5)
        world.now += 30.0  # a checkpoint written between two updates
        drive(policy, QUIET_AFTER + 6, QUIET_AFTER + 5 * WINDOW)
        assert policy.schedule == [(0, 2), (FIRST_PROBE_ENDS, 1), (SECOND_PROBE_ENDS, 2)]


def test_state_round_trip_goes_on_with_the_saved_count() -> None:
    world = World({1: 0.040, 2: 0.120})
    with ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world) as policy:
        drive(policy, 1, SECOND_PROBE_ENDS)
        saved = policy.state_dict()
    assert saved == {"threads": 1, "schedule": [[0, 2], [FIRST_PROBE_ENDS, 1]]}
    resumed = ThreadPolicy(0, conv=True, cores=2, busy=0.0, clock=world)
    resumed.load_state_dict(saved)
    with resumed:
        assert torch.get_num_threads() == 1
        assert resumed.schedule == [(0, 2), (FIRST_PROBE_ENDS, 1)]


def test_a_run_on_a_gpu_keeps_the_cpu_cores_for_its_conv_net() -> None:
    gpu = ThreadPolicy.for_run(0, conv=True, device=torch.device("cuda"))
    assert not gpu.auto and gpu.current == available_cores()
    assert ThreadPolicy.for_run(0, conv=True, device=torch.device("cpu")).auto
    assert ThreadPolicy.for_run(3, conv=True, device=torch.device("cuda")).current == 3


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="torch_threads must be >= 0"):
        ThreadPolicy(-1, conv=True)


def tiny_breakout(run_dir: Path, **changes: Any) -> Any:
    """A few hundred steps of Breakout with updates from step 100 (a random policy ends its evaluation game soon)."""
    settings: dict[str, Any] = dict(
        learning_starts=100, buffer_size=1_000, batch_size=8, log_interval=100, eval_episodes=1
    )
    return train(
        env_id="ALE/Breakout-v5",
        eval_epsilon=1.0,
        run_dir=run_dir,
        progress=False,
        tensorboard=False,
        **settings,
        **changes,
    )


@pytest.mark.slow
def test_a_breakout_run_logs_its_thread_count_and_checkpoints_the_schedule(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    run_dir = tmp_path / "run"
    result = tiny_breakout(run_dir, total_steps=300, checkpoint_every=300)
    assert result.summary["updates"] == len(range(100, 301, 4))  # the Atari preset: an update every 4th step
    rows = read_metrics(run_dir)["train"]
    assert [row["step"] for row in rows] == [100, 200, 300]
    state = load_checkpoint(list_checkpoints(run_dir)[0]).states["threads"]
    counts = candidate_counts(available_cores())
    schedule = state["schedule"]
    assert state["threads"] in counts and all(threads in counts for _, threads in schedule)
    assert schedule[0][0] == 0
    if len(counts) > 1:  # the first probe always moves to a second count after timing the first one
        assert schedule[1][0] == FIRST_PROBE_ENDS and schedule[1][1] != schedule[0][1]
    assert rows[-1]["threads"] == state["threads"]  # the last row was logged at the checkpoint's step


@pytest.mark.slow
def test_a_fixed_count_is_the_threads_column_and_the_evaluations_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ale_py")
    import dueldqn.training

    seen: list[int] = []
    evaluate_agent = dueldqn.training.evaluate_agent

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return evaluate_agent(*args, **kwargs)

    monkeypatch.setattr(dueldqn.training, "evaluate_agent", spy)
    torch.set_num_threads(2)  # what a process on 2 cores starts with
    tiny_breakout(tmp_path / "run", total_steps=200, checkpoint_every=0, torch_threads=1)
    assert [row["threads"] for row in read_metrics(tmp_path / "run")["train"]] == [1.0, 1.0]
    assert seen == [1]  # the final evaluation ran on the loop's count too
    assert torch.get_num_threads() == 2  # and the process's count came back
