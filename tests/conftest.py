"""Test-session settings: one persistent XLA compilation cache for every process of the suite.

The xdist workers, the launchers the tests start and the notebook's kernel compile many of the
same functions (the same agent presets at the same shapes); JAX's persistent cache, configured by
environment variables that those processes inherit, compiles each of them once per session and
keeps them for the next one. JAX evicts nothing without the `filelock` package, so a cache past
2 GiB is started afresh. A JAX_COMPILATION_CACHE_DIR set by the caller is left alone.
"""
import os
import shutil

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
