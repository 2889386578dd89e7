"""Which day each stage has processed, and the lock that keeps one runtime per ``CLM_HOME``.

The scheduler and ``clm run`` are two runtimes over the same state. Three
mechanisms keep every day processed exactly once, in order:

* **The home lock** (``CLM_HOME/.lock``, ``flock``): every pipeline task holds
  it while it reads the ledger and writes. ``clm run`` holds it for its whole
  range, so scheduler tasks wait and then find their days done.
* **The ledger** (``CLM_HOME/ledger.json``): for each stage and ds, the
  *generation* of the input it processed. The generation of ``validated`` for
  ds is a hash of the content of every validated day up to ds; downstream
  stages copy their upstream's generation when they finish. A day is *due* for
  a stage when its upstream generation differs from the stage's: announced and
  never processed, or re-landed with new content. Asset events only wake a DAG
  up; what it processes is every due day, oldest first, so several events in
  one run, events sent while the DAG was paused, and events from ``clm run``
  all end in exactly one processing of each day.
* **The training request**: on a training day (or with no champion yet) the
  features DAG asks for training instead of announcing features; scoring waits
  for days from the requested one on until training has finished or failed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from clm.core.settings import Settings

log = logging.getLogger(__name__)

LEDGER = "ledger.json"
LOCK = ".lock"
# stage -> the stage whose generation it copies
UPSTREAM = {"snapshot": "validated", "online": "snapshot", "scored": "online"}
STAGES = ("validated", *UPSTREAM)

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth), per process


class HomeLocked(RuntimeError):
    """Another process holds the ``CLM_HOME`` lock for longer than we may wait."""


def _lock_path(settings: Settings) -> Path:
    return settings.home / LOCK


def lock_holder(settings: Settings) -> str:
    """Who holds (or last held) the home lock, as recorded in the lock file."""
    try:
        info = json.loads(_lock_path(settings).read_text() or "{}")
    except (OSError, ValueError):
        return "unknown"
    if not info:
        return "unknown"
    where = f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"
    return f"{info.get('owner')} ({where})"


@contextmanager
def home_lock(settings: Settings, owner: str, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the exclusive lock of ``CLM_HOME`` (re-entrant within one process).

    Args:
        owner: who takes it, shown to anyone who waits ("clm run", "clm_score/score ...").
        wait_seconds: how long to wait for another holder; 0 fails at once.

    Raises:
        HomeLocked: naming the holder, if it is still held after ``wait_seconds``.
    """
    path = _lock_path(settings)
    if path in _held:
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[path]
            _held[path] = (fd, depth - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    told = 0.0
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    raise HomeLocked(
                        f"{settings.home} is locked by {lock_holder(settings)}; "
                        f"gave up after {waited:.0f}s"
                    ) from None
                if waited - told >= 30 or told == 0:
                    log.info(
                        "waiting for the lock of %s, held by %s",
                        settings.home,
                        lock_holder(settings),
                    )
                    told = waited or 0.001
                time.sleep(min(2.0, max(wait_seconds - waited, 0.05)))
        os.ftruncate(fd, 0)
        info = {
            "owner": owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[path] = (fd, 1)
        try:
            yield
        finally:
            del _held[path]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _require_lock(settings: Settings) -> None:
    if _lock_path(settings) not in _held:
        raise RuntimeError("the ledger is written only under the CLM_HOME lock (home_lock)")


# --- the ledger -------------------------------------------------------------------


def load(settings: Settings) -> dict[str, Any]:
    """The ledger: ``{stage: {ds: generation}, "training": {...}}``."""
    path = settings.home / LEDGER
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for stage in STAGES:
        data.setdefault(stage, {})
    data.setdefault("training", {})
    return data


def _save(settings: Settings, data: dict[str, Any]) -> None:
    _require_lock(settings)
    path = settings.home / LEDGER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def record(settings: Settings, stage: str, ds: date, generation: str) -> None:
    """Record that ``stage`` processed ``ds`` at ``generation``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    data = load(settings)
    data[stage][ds.isoformat()] = generation
    _save(settings, data)


def generation(settings: Settings, stage: str, ds: date) -> str | None:
    """The generation ``stage`` processed for ``ds``, if any."""
    value = load(settings)[stage].get(ds.isoformat())
    return None if value is None else str(value)


def due(settings: Settings, stage: str, until: date | None = None) -> list[tuple[date, str]]:
    """Days (oldest first) whose upstream generation ``stage`` has not processed yet."""
    data = load(settings)
    upstream = data[UPSTREAM[stage]]
    done = data[stage]
    days = [
        (date.fromisoformat(ds), gen)
        for ds, gen in upstream.items()
        if done.get(ds) != gen and (until is None or date.fromisoformat(ds) <= until)
    ]
    return sorted(days)


def request_training(settings: Settings, ds: date) -> None:
    """Ask for a training run at cutoff ``ds``; scoring from ``ds`` on waits for it."""
    data = load(settings)
    data["training"] = {"requested": ds.isoformat(), "status": "requested"}
    _save(settings, data)


def training_request(settings: Settings) -> tuple[date, str] | None:
    """The open training request ``(ds, status)``; status is requested or failed."""
    training = load(settings)["training"]
    if not training.get("requested"):
        return None
    return date.fromisoformat(training["requested"]), str(training.get("status"))


def finish_training(settings: Settings, ds: date, ok: bool) -> None:
    """Close (``ok``) or mark failed the training request for ``ds``, if it is the open one."""
    data = load(settings)
    training = data["training"]
    if training.get("requested") != ds.isoformat():
        return
    data["training"] = {} if ok else {**training, "status": "failed"}
    _save(settings, data)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
