"""Host memory on a CPU backend: let each step reuse the buffers the step before freed.

XLA:CPU allocates an execution's temporaries as one block with malloc (MinAtar's 5-seed spr learn
step: 89 MB). glibc serves a block over 32 MB with a fresh mmap and unmaps it when it is freed,
and a thread's own arena (a heap of at most 64 MB) does the same for any larger block. So every
step page-faulted and zeroed its whole temporary block: 22,300 page faults a step, 20% of the
MinAtar psrl and spr runs' CPU time in the kernel; with the settings below none, and a resumed
MinAtar psrl run makes 1.3x the agent steps/s (WORKSPACE_NOTES.md, "Performance notes").
"""

import ctypes
import ctypes.util
import platform

# mallopt(3) parameters.
_M_MXFAST, _M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = 1, -1, -4, -8


def reuse_freed_memory() -> bool:
    """On glibc: every thread allocates from the one main heap, no block is mmapped, and the heap's
    free top is never returned to the system, so a freed block serves the next step's. Fast bins
    are off: glibc empties them into the heap before every request of 1 KB or more, and a step makes
    ~30,000 such requests among as many small frees, which in the one heap cost more than the page
    faults saved (a resumed MinAtar psrl run: 2.8-3.3 agent steps/s with fast bins, 3.8-4.3 without,
    2.9-3.3 with glibc's defaults).

    Call it before JAX creates its CPU backend: a thread keeps the arena it first allocated in.
    The process's resident memory then stays at its peak instead of shrinking after it.
    Returns whether the settings were applied (False where the C library is not glibc).
    """
    if platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c'))
    return all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_MXFAST, 0)))
