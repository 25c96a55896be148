"""Where a study lives: SQLite, another SQLAlchemy database, or Optuna's journal file; and dead workers.

One process: SQLite, ``sqlite:///runs/tune/NAME.db``. ``--jobs K`` runs K worker processes on
one machine against one study; Optuna recommends its journal file storage for that (SQLite
serialises writers and can answer "database is locked"), so K > 1 defaults to
``journal:runs/tune/NAME.journal``. Any SQLAlchemy URL (PostgreSQL, MySQL) serves workers on
several machines; those storages run a heartbeat every 60 s, and trials silent for 5 minutes are
failed by the next worker to start a trial.

Each trial records its worker (host, pid, the pid's start time). A RUNNING trial whose worker on
this machine is gone is found at once by :func:`fail_dead_trials`, without waiting for a heartbeat.
"""

from __future__ import annotations

import os
import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

JOURNAL = "journal:"


def default_storage(study_name: str, jobs: int) -> str:
    """SQLite for one process; Optuna's journal file for several (see the module docstring)."""
    if jobs > 1:
        return f"{JOURNAL}runs/tune/{study_name}.journal"
    return f"sqlite:///runs/tune/{study_name}.db"


def storage_file(url: str) -> Path | None:
    """The local file a journal or SQLite storage URL names (None for a database server)."""
    if url.startswith(JOURNAL):
        return Path(url[len(JOURNAL) :])
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``; a URL that cannot be opened is a ``ValueError`` that says what is expected."""
    expected = "expected sqlite:///PATH.db, another SQLAlchemy URL (postgresql://...) or journal:PATH"
    if url.startswith(JOURNAL):
        path = Path(url[len(JOURNAL) :])
        if not path.name:
            raise ValueError(f"storage {url!r} names no file; {expected}")
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend)
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as err:
        raise ValueError(f"storage {url!r} is not a database URL; {expected}") from err
    engine_kwargs: dict[str, Any] = {}
    heartbeat: dict[str, Any] = {"heartbeat_interval": 60, "grace_period": 300}
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise ValueError(f"storage {url!r}: an in-memory SQLite database cannot be resumed; {expected}")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for another writer instead of failing
        heartbeat = {}  # one machine: dead workers are found by pid (fail_dead_trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as err:
        raise ValueError(f"cannot open storage {url!r}: {type(err).__name__}: {err}; {expected}") from err


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so that a reused pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host, pid and the pid's start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _alive(worker: dict[str, Any]) -> bool:
    try:
        os.kill(worker["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process with that pid: compare start times
    return not worker["started"] or _start_time(worker["pid"]) == worker["started"]


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker on this machine has died, and queue their parameters again.

    A trial records its worker first thing; one that has recorded none a minute after it started
    died in between. Returns the numbers of the trials marked. Trials of other machines are left
    to the heartbeat of their storage.
    """
    host, now = socket.gethostname(), datetime.now()
    marked = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker is None:
            if t.datetime_start is None or (now - t.datetime_start).total_seconds() < 60:
                continue
            why = "its worker recorded no identity"
        elif worker["host"] != host or _alive(worker):
            continue
        else:
            why = f"worker {worker['pid']} died"
        storage.set_trial_user_attr(t._trial_id, "stopped", why)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        marked.append(t.number)
    return marked
