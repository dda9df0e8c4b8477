"""A run directory knows what it holds and who writes it.

Two guarantees for every training run directory (``run_dir``):

- **Its configuration.** ``run_dir/config.json`` records the configuration the run was made with. A later
  call may resume the run only with the same configuration; budget fields (:data:`BUDGET_FIELDS`: the step
  count may grow, how often it logs and checkpoints, where it runs) may change. Anything else stops the call
  before any work, with :class:`RunConfigMismatch` naming the fields that differ and the two ways out.
- **One writer.** :class:`RunLock` holds ``run_dir/lock.json`` (an exclusive lock on the file, which names
  the holder's pid, host, start time and command) while a process trains there; a second process stops at
  once with :class:`RunLockedError` naming the holder. The lock of a process that died is released by the
  operating system, so the next process takes it over (and says whose it was).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from .distributed import is_distributed, is_main

CONFIG_FILE = "config.json"
LOCK_FILE = "lock.json"

# Fields a resumed run may change: how long it trains (never shorter), how it logs and checkpoints, where it
# runs and how many items its evaluations read. Every other field must match the recorded one.
BUDGET_FIELDS = {
    "train.max_steps": "may grow",
    "train.checkpoint_every": "any",
    "train.log_every": "any",
    "train.num_workers": "any",
    "train.device": "any",
    "train.max_eval_items": "any",
}


class RunConfigMismatch(ValueError):
    """A run directory holds a run made with another configuration."""


class RunLockedError(RuntimeError):
    """Another process is writing to this run directory."""


# Configuration ---------------------------------------------------------------------------------------------------
def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}`` (dicts of plain fields stay values when they are
    a field's value, e.g. ``train.loss_weights``, one level below a section)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _plain(value: Any) -> Any:
    """A value as it reads back from config.json (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def config_differences(recorded: dict[str, Any], current: dict[str, Any],
                       keys: Iterable[str] | None = None) -> list[tuple[str, Any, Any]]:
    """``(field, recorded value, current value)`` for every field that differs and may not, over ``keys``
    (top-level sections or fields; all of both configurations by default). A budget field differs only when
    the change is not allowed (``train.max_steps`` may only grow)."""
    old, new = flatten(_plain(recorded)), flatten(_plain(current))
    if keys is not None:
        wanted = tuple(keys)
        old = {k: v for k, v in old.items() if k.split(".")[0] in wanted}
        new = {k: v for k, v in new.items() if k.split(".")[0] in wanted}
    missing = object()
    out = []
    for field in sorted(set(old) | set(new)):
        a, b = old.get(field, missing), new.get(field, missing)
        if a == b:
            continue
        rule = BUDGET_FIELDS.get(field)
        if rule == "any" and a is not missing and b is not missing:
            continue
        if rule == "may grow" and isinstance(a, int) and isinstance(b, int) and b >= a:
            continue
        out.append((field, None if a is missing else a, None if b is missing else b))
    return out


def mismatch_message(run_dir: Path, differences: list[tuple[str, Any, Any]]) -> str:
    lines = [f"  {field}: {old!r} in the run, {new!r} now"
             + (" (the step count may grow, not shrink)" if field == "train.max_steps" else "")
             for field, old, new in differences]
    return (f"run directory {str(run_dir)!r} holds a run made with another configuration "
            f"({run_dir / CONFIG_FILE}); it resumes only with the same one (the step count may grow):\n"
            + "\n".join(lines)
            + f"\nEither write this run elsewhere (another output_dir / --run-dir), or delete {str(run_dir)!r} "
              f"to start it over.")


def recorded_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The configuration a run directory records, or None when it holds no run yet."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise RunConfigMismatch(f"{path} is not valid JSON ({error}); delete {str(Path(run_dir))!r} to start "
                                f"the run over") from None


def check_config(run_dir: str | os.PathLike, current: dict[str, Any], keys: Iterable[str] | None = None) -> None:
    """Raise :class:`RunConfigMismatch` if ``run_dir`` records a run whose configuration differs from
    ``current`` (over ``keys``) in a field that may not change. Nothing recorded: nothing to check."""
    recorded = recorded_config(run_dir)
    if recorded is None:
        return
    differences = config_differences(recorded, current, keys)
    if differences:
        raise RunConfigMismatch(mismatch_message(Path(run_dir), differences))


def record_config(run_dir: str | os.PathLike, current: dict[str, Any]) -> None:
    """Check ``current`` against what ``run_dir`` records, then record it (a grown budget included)."""
    check_config(run_dir, current)
    atomic_write_json(current, Path(run_dir) / CONFIG_FILE)


# The writer's lock -----------------------------------------------------------------------------------------------
_held: dict[Path, list] = {}  # lock files this process holds -> [file descriptor, nesting depth]


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')!r}, started {when}: " \
           f"{holder.get('command', '?')}"


class RunLock:
    """``with RunLock(run_dir):`` hold the run directory's writer lock (re-entrant within one process).

    The lock is an exclusive ``flock`` on ``run_dir/lock.json``, which also says who holds it. The operating
    system drops the lock of a process that dies, however it dies, so a lock left by a dead process is simply
    taken by the next one (which says whose it was); there is no stale lock to guess about. Two processes
    starting together: exactly one gets it.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = (Path(run_dir) / LOCK_FILE).absolute()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def holder(self) -> dict[str, Any]:
        """What the lock file says of its last holder (empty if nothing)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (FileNotFoundError, ValueError):
            return {}

    def acquire(self) -> None:
        import fcntl

        if self.path in _held:
            _held[self.path][1] += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"run directory {str(self.path.parent)!r} is being written by another process "
                f"({_describe(self.holder())}). Wait for it to finish or stop it, or write this run elsewhere "
                f"(another output_dir / --run-dir).") from None
        previous = self.holder()
        if previous.get("pid") is not None:
            print(f"run directory {str(self.path.parent)!r}: taking over the lock left by "
                  f"{_describe(previous)} (that process is no longer running)", file=sys.stderr)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "?"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        _held[self.path] = [fd, 1]

    def is_held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (tried without keeping it or writing the file)."""
        import fcntl

        if self.path in _held or not self.path.is_file():
            return False
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock just taken
        return False

    def release(self) -> None:
        import fcntl

        entry = _held.get(self.path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[self.path]
        fd = entry[0]
        try:
            os.ftruncate(fd, 0)  # a released lock names nobody; the file stays (removing it would race)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def run_dir_problems(run_dir: str | os.PathLike, run_config: dict[str, Any] | None = None) -> list[str]:
    """For a preflight: the run directory is being written by another process, or records a run whose
    configuration differs from ``run_config`` (not checked when None)."""
    problems = []
    lock = RunLock(run_dir)
    if is_main() and lock.is_held_elsewhere():  # the other processes of a data-parallel run never hold it
        problems.append(f"run directory {str(Path(run_dir))!r} is being written by another process "
                        f"({_describe(lock.holder())}); wait for it, stop it, or write this run elsewhere")
    if run_config is not None:
        try:
            check_config(run_dir, run_config)
        except RunConfigMismatch as error:
            problems.append(str(error))
    return problems


@contextmanager
def claim(run_dir: str | os.PathLike, run_config: dict[str, Any] | None = None) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the block (the main process takes it) and, given ``run_config``,
    record it there after checking it against the recorded one (:func:`record_config`). Under data
    parallelism every process raises the same error if either fails."""
    import torch

    lock = RunLock(run_dir)
    problem: Exception | None = None
    if is_main():
        try:
            lock.acquire()
            try:
                if run_config is not None:
                    record_config(run_dir, run_config)
            except BaseException:
                lock.release()
                raise
        except (RunLockedError, RunConfigMismatch) as error:
            problem = error
    if is_distributed():
        box = [problem]
        torch.distributed.broadcast_object_list(box, src=0)
        problem = box[0]
    if problem is not None:
        raise problem
    try:
        yield
    finally:
        if is_main():
            lock.release()
