"""Checkpoints of a run: orbax saves of the loop's state, checked against CRC32 checksums on restore.

A damaged latest checkpoint is reported and set aside, and the previous one is used. A save that
fails (a full disk) leaves the checkpoints before it as they were.
"""
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import zlib
from typing import Any, Dict, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from psrl_jax.errors import UsageError
from psrl_jax.run_files import NO_SPACE, write_json, writing

_CHECKSUMS = 'psrl_checksums.json'


def _file_checksums(directory: str) -> Dict[str, str]:
    """CRC32 of every file under a checkpoint directory (but the checksum file itself)."""
    sums = {}
    for folder, _, files in os.walk(directory):
        for name in files:
            if name.startswith(_CHECKSUMS):
                continue
            path = os.path.join(folder, name)
            crc = 0
            with open(path, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 24), b''):
                    crc = zlib.crc32(chunk, crc)
            sums[os.path.relpath(path, directory)] = f'{crc:08x}'
    return sums


def checkpoint_directory(workdir: str) -> str:
    """This process's checkpoint folder: each process of a distributed run keeps its own seeds'."""
    if jax.process_count() == 1:
        return os.path.abspath(os.path.join(workdir, 'checkpoints'))
    return os.path.abspath(os.path.join(workdir, 'checkpoints', f'process_{jax.process_index()}'))


def latest_saved_step(workdir: str) -> Optional[int]:
    """The step of this process's newest complete checkpoint in workdir, or None.

    Orbax writes a checkpoint under a temporary name and renames it to its step once complete.
    """
    directory = checkpoint_directory(workdir)
    if not os.path.isdir(directory):
        return None
    return max((int(name) for name in os.listdir(directory) if name.isdigit()), default=None)


class _SaveErrorLogs(logging.Filter):
    """Orbax's error logs, and asyncio's about the exceptions of orbax's tasks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not (
            'orbax' in record.pathname or 'exception was never retrieved' in record.getMessage())


@contextlib.contextmanager
def _failure_told_once():
    """Keeps what orbax and tensorstore print about a failed save off stderr: the caller gets the
    error. Orbax logs its traceback from its writer threads (again at exit), asyncio logs its tasks'
    unretrieved exceptions, and tensorstore's callbacks for the writes still in flight print
    'RuntimeError: Event loop is closed' tracebacks (orbax has closed their loop) while the process
    lives. The filters come off after a save that succeeds and stay after one that fails.
    """
    logs, previous_hook = _SaveErrorLogs(), sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == 'Event loop is closed'):
            previous_hook(unraisable)

    for name in ('absl', 'asyncio'):
        logging.getLogger(name).addFilter(logs)
    sys.unraisablehook = hook
    yield
    for name in ('absl', 'asyncio'):
        logging.getLogger(name).removeFilter(logs)
    sys.unraisablehook = previous_hook


class Checkpoints:
    """Orbax checkpoints of the device carry plus the loop's host counters, under workdir/checkpoints.

    read_only: only restore (e.g. to analyse a run that may still be training).
    """

    def __init__(self, workdir: str, max_to_keep: Optional[int], read_only: bool = False):
        # Synchronous saves: the carry's buffers are donated to the next step right after a save.
        # Each process keeps its own checkpoints (its seeds are independent of the others').
        # The folder is created by the first save; a writer removes what a failed save left.
        process = jax.process_index()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=False, enable_async_checkpointing=False,
            read_only=read_only, cleanup_tmp_directories=not read_only,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                primary_host=process, active_processes={process}))
        self.directory = checkpoint_directory(workdir)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, carry: Any, host: Dict[str, np.ndarray], meta: Dict) -> None:
        """Writes checkpoint `step` (atomically, by orbax) and then its file checksums.

        Arrays are saved as host (numpy) copies: they belong to this process only, and restore
        places them on whatever devices the resumed run uses. A full disk raises OSError
        (errno in run_files.NO_SPACE) and leaves the earlier checkpoints whole.
        """
        directory = os.path.join(self.directory, str(step))
        with writing(directory), _failure_told_once():
            try:
                self.manager.save(step, args=ocp.args.Composite(
                    carry=ocp.args.StandardSave(jax.device_get(carry)),
                    host=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta)))
            except ValueError as err:   # tensorstore's: "... [os_error_code='28']"
                code = re.search(r"os_error_code='(\d+)'", str(err))
                if code is None or int(code.group(1)) not in NO_SPACE:
                    raise
                raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None
        write_json(os.path.join(directory, _CHECKSUMS), _file_checksums(directory))

    def _damaged(self, step: int) -> Optional[str]:
        """Why checkpoint `step` fails its checksums, or None (also when it has none yet)."""
        directory = os.path.join(self.directory, str(step))
        try:
            with open(os.path.join(directory, _CHECKSUMS)) as f:
                expected = json.load(f)
        except (OSError, ValueError):
            return None
        actual = _file_checksums(directory)
        changed = sorted(set(expected.items()) ^ set(actual.items()))
        return f'{len(changed)} file(s) changed or missing, e.g. {changed[0][0]}' if changed else None

    def restore(self, step: int, carry: Any, host: Dict[str, np.ndarray]):
        """(carry, host) of checkpoint `step` as numpy arrays shaped like the templates given."""
        abstract = lambda tree: jax.tree.map(lambda x: np.empty(x.shape, x.dtype), tree)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            carry=ocp.args.StandardRestore(abstract(carry)),
            host=ocp.args.StandardRestore(abstract(host)), meta=ocp.args.JsonRestore()))
        return restored['carry'], restored['host']

    def _read(self, step: int, carry: Any, host: Dict[str, np.ndarray]):
        """(restore's (carry, host), None), or (None, why checkpoint `step` cannot be read)."""
        reason = self._damaged(step)
        if reason is None:
            try:
                return self.restore(step, carry, host), None
            except Exception as err:  # pylint: disable=broad-except
                reason = f'{type(err).__name__}: {(str(err).strip().splitlines() or [""])[0]}'
        return None, reason

    def restore_step(self, step: Optional[int], carry: Any, host: Dict[str, np.ndarray]):
        """(carry, host) of checkpoint `step` (None: the newest), read-only, for analysis: UsageError
        when there is none, none at that step, or it fails its checksums or cannot be read."""
        steps = sorted(self.manager.all_steps())
        if not steps:
            raise UsageError(f'{os.path.dirname(self.directory)} has no checkpoint')
        step = steps[-1] if step is None else step
        if step not in steps:
            raise UsageError(f'{os.path.dirname(self.directory)} has no checkpoint at step {step} '
                             f'(it has {", ".join(map(str, steps))})')
        restored, reason = self._read(step, carry, host)
        if reason is not None:
            raise UsageError(f'checkpoint {step} in {self.directory} is unreadable ({reason})')
        return restored

    def restore_latest(self, carry: Any, host: Dict[str, np.ndarray]):
        """The newest readable checkpoint as (carry, host), or None when there is none.

        Unreadable (corrupt) checkpoints are reported on stderr and, once an older one has been
        read, moved to checkpoints_corrupt/ so that the run can write those steps again. When
        none is readable nothing is moved and UsageError is raised.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        corrupt = []
        for step in steps:
            restored, reason = self._read(step, carry, host)
            if reason is not None:
                print(f'warning: checkpoint {step} in {self.directory} is unreadable ({reason})',
                      file=sys.stderr, flush=True)
                corrupt.append(step)
                continue
            for bad in corrupt:
                aside = os.path.join(os.path.dirname(self.directory), 'checkpoints_corrupt')
                os.makedirs(aside, exist_ok=True)
                shutil.move(os.path.join(self.directory, str(bad)), os.path.join(aside, str(bad)))
                print(f'warning: moved checkpoint {bad} to {aside}; resuming from step {step}',
                      file=sys.stderr, flush=True)
            if corrupt:
                self.manager.reload()
            return restored
        if corrupt:
            raise UsageError(f'no readable checkpoint in {self.directory} (steps {corrupt} are '
                             f'corrupt): use --overwrite to start the run again')
        return None

    def close(self) -> None:
        self.manager.close()
