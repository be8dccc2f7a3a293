"""Test-session settings and shared fixtures.

One persistent XLA compilation cache for every process of the suite: the xdist workers, the launchers the tests start and the notebook's kernel compile many of the
same functions (the same agent presets at the same shapes); JAX's persistent cache, configured by
environment variables that those processes inherit, compiles each of them once per session and
keeps them for the next one. JAX evicts nothing without the `filelock` package, so a cache past
2 GiB is started afresh. A JAX_COMPILATION_CACHE_DIR set by the caller is left alone.

Compilation is most of the suite's CPU time, and the tests check what the programs compute, not how
fast: they compile with LLVM's optimization level 1 (XLA_FLAGS, inherited the same way; XLA's own
HLO passes are unchanged). Measured on this 2-core CPU, cold cache: a compile-bound test 73 -> 58 s
of CPU, the DMControl smoke run 148 -> 128 s, the 6,000-step MinAtar learning test 129 s either way
(level 0 would halve compiling but made that test 3.6x slower). WORKSPACE_NOTES.md, "Test-suite
time".
"""
import errno
import os
import shutil
import subprocess

import pytest

from psrl_jax import host_memory

CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '.pytest_cache',
                     'jax_compilation_cache')
LIMIT_BYTES = 2 << 30


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:   # xdist workers inherit the controller's
    if os.path.isdir(CACHE) and _size(CACHE) > LIMIT_BYTES:
        shutil.rmtree(CACHE, ignore_errors=True)
    os.environ['JAX_COMPILATION_CACHE_DIR'] = CACHE
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               ' --xla_backend_optimization_level=1').strip()
# The launchers restart themselves under glibc's huge-page tunable unless it is set
# (psrl_jax.host_memory): set here, the many launchers the tests start do not import twice.
_HUGE_PAGES = host_memory.huge_page_environment(os.environ)
if _HUGE_PAGES is not None:
    os.environ['GLIBC_TUNABLES'] = _HUGE_PAGES['GLIBC_TUNABLES']


# The files of over ~40 s of one worker in the whole suite (measured 2026-12-02; test_learning_psrl
# 2026-12-04, ~280 s of CPU), dearest first, then the rest in pytest's order. `make test` passes
# --no-loadscope-reorder, so xdist hands files to its workers in this order; its default (most tests
# first) would start the notebook, the learning tests and the distributed run, each a file of one or
# two long tests, last.
DEAREST_FIRST = ('test_reliability.py', 'test_launchers.py', 'test_cost.py', 'test_learning_psrl.py',
                 'test_sweep.py', 'test_notebook.py', 'test_seeds.py', 'test_rainbow.py',
                 'test_benchmark.py', 'test_psrl.py', 'test_learning.py', 'test_distributed.py',
                 'test_visualization.py', 'test_sac.py', 'test_correspondence_script.py',
                 'test_correspondence_learning.py', 'test_training.py', 'test_replay.py')


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(DEAREST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: keeps the rest


class Tmpfs:
    """Small tmpfs file systems for real ENOSPC and EROFS errors, unmounted after the test."""

    def __init__(self, root):
        self.root = root
        self.mounted = []

    def mount(self, size_mb: int):
        """A new, empty tmpfs folder of size_mb MiB; skips the test where mounting is not allowed
        (it needs root)."""
        path = self.root / f'tmpfs_{len(self.mounted)}'
        path.mkdir()
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mb}m', 'tmpfs',
                                 str(path)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f'cannot mount a tmpfs here: {result.stderr.strip()}')
        self.mounted.append(path)
        return path

    @staticmethod
    def read_only(path) -> None:
        subprocess.run(['mount', '-o', 'remount,ro', str(path)], check=True)

    @staticmethod
    def fill(path, leave_kb: int = 0) -> str:
        """Fills the file system of `path` with a file (returned) until a write fails with ENOSPC,
        then frees leave_kb KiB of it.

        Files already there keep the unused end of their last page, so a short append to one of
        them may still succeed.
        """
        filler = os.path.join(path, 'filler')
        with open(filler, 'wb', buffering=0) as f:
            for chunk in (1 << 20, 1 << 12):
                try:
                    while True:
                        f.write(b'\0' * chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
        os.truncate(filler, os.path.getsize(filler) - leave_kb * 1024)
        return filler

    def unmount_all(self) -> None:
        for path in reversed(self.mounted):
            subprocess.run(['umount', '--lazy', str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounts = Tmpfs(tmp_path)
    yield mounts
    mounts.unmount_all()
