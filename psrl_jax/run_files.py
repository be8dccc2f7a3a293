"""A run directory's own files: its lock, JSON records, and each seed's logs (metrics.csv,
eval.csv, TensorBoard events).

Every write here reaches the file system before the call returns (no background writer), so a full
disk raises OSError (errno in NO_SPACE) in the caller, and what was written whole stays readable:
JSON files are replaced atomically, and a resumed run drops log rows cut short.
"""
import contextlib
import csv
import errno
import fcntl
import json
import os
import socket
import time
from typing import Dict, Sequence

import numpy as np
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2
from tensorboardX.summary import scalar

from psrl_jax.errors import UsageError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)   # a full disk, or a full quota


def lock_name(process: int) -> str:
    """The lock file of a run's process: process 0 (or a single process) holds the workdir's."""
    return 'run.lock' if process == 0 else f'process_{process}.lock'


def is_lock(name: str) -> bool:
    """Whether a name in a run directory is one of its processes' lock files."""
    return name.endswith('.lock')


class WorkdirLock:
    """An exclusive lock (flock) on a lock file in a run directory, held until this process exits.

    The kernel releases it when the process ends, however it ends (SIGKILL included), so a lock is
    never stale. The file names its holder (pid, host, start time) for a launch that finds it taken.
    Creates the directory. Raises UsageError, having changed nothing, when the directory cannot be
    created or written or another live process holds the lock; OSError (NO_SPACE) on a full disk.
    """

    def __init__(self, workdir: str, name: str):
        self.path = os.path.join(workdir, name)
        try:
            os.makedirs(workdir, exist_ok=True)
            if not os.access(workdir, os.W_OK | os.X_OK):
                raise UsageError(f'cannot write the workdir {workdir} (' + (
                    'read-only file system' if os.statvfs(workdir).f_flag & os.ST_RDONLY
                    else 'no write permission') + ')')
            self._found = _contents(self.path)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in NO_SPACE:
                raise
            raise UsageError(f'cannot create or write the workdir {workdir} '
                             f'({_reason(workdir, err)})') from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 1024, 0).decode(errors='replace').strip()
            os.close(self.fd)
            raise UsageError(f'{workdir} is in use by {holder or "another process"}: wait for it '
                             f'to end, stop it, or use another --workdir') from None
        except OSError as err:   # e.g. a file system without locks
            os.close(self.fd)
            raise UsageError(f'cannot lock the workdir {workdir} ({err.strerror})') from None
        started = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
        self._write(f'pid {os.getpid()} on host {socket.gethostname()} (started {started})\n'
                    .encode())

    def _write(self, data: bytes) -> None:
        # In place (no truncation first): the old record's block holds a new one on a full disk.
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))

    def abandon(self) -> None:
        """Puts the lock file back as this process found it (empty if there was none) and releases
        the lock: a launch refused after taking it leaves the run directory as it was."""
        data, times = self._found or (b'', None)
        self._write(data)
        if times is not None:
            os.utime(self.path, ns=times)
        os.close(self.fd)


def _contents(path: str):
    """(bytes, (atime_ns, mtime_ns)) of a file, or None when there is none."""
    try:
        with open(path, 'rb') as f:
            stat = os.fstat(f.fileno())
            return f.read(), (stat.st_atime_ns, stat.st_mtime_ns)
    except FileNotFoundError:
        return None


def _reason(workdir: str, err: OSError) -> str:
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        return 'it is a file'
    return f'{err.strerror}: {err.filename}' if err.filename else err.strerror


@contextlib.contextmanager
def writing(path: str):
    """Names `path` in an OSError raised inside (a failed write or close names no file)."""
    try:
        yield
    except OSError as err:
        err.filename = err.filename or path
        raise


@contextlib.contextmanager
def _replacing(path: str):
    """A file to write that replaces `path` once complete, atomically; removed if the write fails.

    Readers, and a run resumed after a failed write, find the previous file or the new one.
    """
    temporary = path + '.tmp'
    try:
        with writing(path), open(temporary, 'w', newline='') as f:
            yield f
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path: str, value) -> None:
    """Writes `value` to `path` as JSON, atomically."""
    with _replacing(path) as f:
        json.dump(value, f, indent=2)


class RunLogs:
    """metrics.csv, eval.csv and TensorBoard events of each seed; rows survive restarts exactly once."""

    def __init__(self, seed_dirs: Sequence[str], resume_step: int):
        self.seed_dirs = list(seed_dirs)
        self.events = []
        with self._closed_on_error():
            for directory in self.seed_dirs:
                os.makedirs(os.path.join(directory, 'tensorboard'), exist_ok=True)
                for name in ('metrics.csv', 'eval.csv'):
                    _truncate_csv(os.path.join(directory, name), resume_step)
                self.events.append(EventsWriter(os.path.join(directory, 'tensorboard', 'events')))

    def write(self, name: str, step: int, rows: Sequence[Dict[str, float]]) -> None:
        """Appends one row per seed to `name` and its finite values to TensorBoard as `name/key`."""
        with self._closed_on_error():
            for directory, events, row in zip(self.seed_dirs, self.events, rows):
                row = {'step': step, **row}
                with writing(os.path.join(directory, name)):
                    _append_csv(os.path.join(directory, name), row)
                with writing(os.path.join(directory, 'tensorboard')):
                    for key, value in row.items():
                        if key != 'step' and np.isfinite(value):
                            events.write_event(event_pb2.Event(
                                wall_time=time.time(), step=step,
                                summary=scalar(f'{name[:-4]}/{key}', value)))
                    events.flush()

    @contextlib.contextmanager
    def _closed_on_error(self):
        """On a failed write (a full disk) closes the event files at once: their buffers cannot be
        written, and closing them later (or at exit) would only fail again."""
        try:
            yield
        except OSError:
            for events in self.events:
                with contextlib.suppress(OSError):
                    events.close()
            self.events = []
            raise

    def close(self) -> None:
        for events in self.events:
            events.close()
        self.events = []


def _append_csv(path: str, row: Dict[str, float]) -> None:
    """Appends `row` under the file's header. A row with columns the header lacks (a run resumed by
    code that logs more) first widens the header, the earlier rows left empty in the new columns
    (read as NaN); a column the row lacks is left empty."""
    header = []
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, newline='') as f:
            header = next(csv.reader(f), [])
    new = [name for name in row if name not in header]
    if header and new:
        with open(path, newline='') as f:
            rows = list(csv.reader(f))[1:]
        with _replacing(path) as f:
            csv.writer(f).writerows([header + new] + [r + [''] * len(new) for r in rows])
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=header + new, restval='')
        if not header:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: str, step: int) -> None:
    """Drops rows logged after `step` (written after the checkpoint being resumed) and rows cut
    short (a write stopped by a full disk or a kill); a file left without rows is removed."""
    if not os.path.exists(path):
        return
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    kept = [r for r in rows[1:] if len(r) == len(rows[0]) and int(float(r[0])) <= step]
    if not kept:
        os.remove(path)
    elif len(kept) < len(rows) - 1:
        with _replacing(path) as f:
            csv.writer(f).writerows(rows[:1] + kept)
