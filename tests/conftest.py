"""What several test modules share: the CLI in a subprocess, a run paused at a checkpoint, metrics rows, one Ray.

Kill tests never race the run they kill: :func:`start_cli` can pause the run right after it writes a
given checkpoint (the training process itself waits there), so a signal sent once :func:`wait_for_file`
sees the pause marker always lands at that step, however fast or slow the machine is.

Subprocesses import the same ``dueldqn`` as these tests (the source tree or an installed wheel), and
:func:`import_benchmark` skips, saying why, where the tests run without the source tree's ``benchmarks/``.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import dueldqn

# The folder that holds the dueldqn under test, first on a subprocess's path (a checkout, or site-packages).
PACKAGE_PARENT = Path(dueldqn.__file__).resolve().parent.parent
# A checkout's root, where benchmarks/ lives (not in the installed package).
SOURCE_ROOT = Path(__file__).resolve().parent.parent
TIMING_COLUMNS = {"steps_per_second"}
# Only a bound on a run that hangs: every wait below ends on an event long before this.
HANG_SECONDS = 900

# Runs ``dueldqn.cli.main`` and, right after the checkpoint of step AT of the run directory whose name starts with
# PREFIX is written, creates MARKER and waits there until a signal comes (SIGKILL ends it there; SIGINT and SIGTERM
# go on to the run's own handler, which stops the loop at its next step boundary).
_PAUSED_CLI = """
import signal, sys, time
from pathlib import Path

import dueldqn.executors.session as session
from dueldqn.cli import main

at, prefix, marker, args = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
real_save = session.save_checkpoint


def save_checkpoint(run_dir, step, states, **kwargs):
    path = real_save(run_dir, step, states, **kwargs)
    if step == at and Path(run_dir).name.startswith(prefix) and not marker.exists():
        signals = []
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def record(signum, frame):
            signals.append(signum)
            if callable(handlers[signum]):
                handlers[signum](signum, frame)

        for s in handlers:
            signal.signal(s, record)
        marker.write_text(str(step))  # after the handlers: a signal sent once the marker exists is seen
        while not signals:
            time.sleep(0.01)
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return path


session.save_checkpoint = save_checkpoint
sys.exit(main(args))
"""


def pytest_report_header() -> str:
    """Which dueldqn the tests run against: a checkout or an installed wheel (CI runs both)."""
    return f"dueldqn {dueldqn.__version__} from {PACKAGE_PARENT}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with the dueldqn under test first on ``PYTHONPATH`` and unbuffered output."""
    path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def start_cli(
    *args: str, pause_at: int | None = None, marker: Path | None = None, run_prefix: str = ""
) -> subprocess.Popen[bytes]:
    """``dueldqn *args`` in a new process (stderr piped); with ``pause_at``, paused after that checkpoint.

    The paused run creates ``marker`` (wait for it with :func:`wait_for_file`) and holds until a signal
    comes; ``run_prefix`` limits the pause to run directories whose name starts with it (a tune trial's).
    """
    if pause_at is None:
        command = [sys.executable, "-m", "dueldqn.cli", *args]
    else:
        assert marker is not None, "a paused run needs a marker file to say it has paused"
        command = [sys.executable, "-c", _PAUSED_CLI, str(pause_at), run_prefix, str(marker), *args]
    return subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``path`` exists; fail at once, with the process's stderr, if the process ends first."""
    deadline = time.monotonic() + HANG_SECONDS
    while not path.exists():
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the process ended ({proc.returncode}) before {path} existed:\n{stderr[-3000:]}")
        assert time.monotonic() < deadline, f"{path} did not appear in {HANG_SECONDS} s: the run hangs"
        time.sleep(0.01)


def kill_when_paused(proc: subprocess.Popen[bytes], marker: Path, sig: int) -> int:
    """Send ``sig`` to a run started with ``pause_at`` once it has paused; returns its exit status."""
    wait_for_file(marker, proc)
    proc.send_signal(sig)
    return proc.wait(timeout=HANG_SECONDS)


def finish(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a CLI process and assert it succeeded (its stderr in the message)."""
    _, stderr = proc.communicate(timeout=HANG_SECONDS)
    assert proc.returncode == 0, stderr.decode()[-3000:]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """``metrics.csv`` as rows, without the wall-clock columns (two equal runs differ only there)."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def import_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks.<name>`` from a checkout; skip, saying why, where only the installed package is here.

    In a checkout an import error fails the test: a skip there would hide a broken script.
    """
    if not (SOURCE_ROOT / "benchmarks").is_dir():
        pytest.skip("benchmarks/ is in the source tree, not in the installed package", allow_module_level=True)
    if str(SOURCE_ROOT) not in sys.path:
        sys.path.insert(0, str(SOURCE_ROOT))
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray per test module: 2 CPUs, no dashboard, a small object store; its session files removed after."""
    ray = pytest.importorskip("ray", reason="the Ray tests need: pip install 'dueldqn[ray]'")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    from dueldqn.executors.ray_apex import remove_session, session_dir

    session = session_dir()
    yield ray
    ray.shutdown()
    remove_session(session)
