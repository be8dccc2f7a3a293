"""Host memory on a CPU backend: back the per-step temporary block with huge pages.

XLA:CPU allocates an execution's temporaries as one block with malloc (MinAtar's 5-seed learn
steps: 89-100 MB). glibc maps any block over 32 MB afresh and unmaps it when it is freed, so every
step page-faulted and zeroed its whole block in 4 KiB pages: 22,000-25,000 faults an agent step,
20% of the MinAtar psrl and spr runs' CPU time in the kernel. glibc's `glibc.malloc.hugetlb=1`
tunable asks for transparent huge pages on what malloc maps: a 64 MB block then faults 245 times a
call instead of 16,390, and a resumed MinAtar psrl run made ~1.2-1.3x the agent steps/s
(WORKSPACE_NOTES.md, "Performance notes"). glibc reads its tunables only when a process starts,
hence `restart_with_huge_pages`.
"""

import os
import platform
import sys
from typing import Mapping, Optional

TUNABLE = 'glibc.malloc.hugetlb=1'


def huge_page_environment(environ: Mapping[str, str]) -> Optional[dict]:
    """`environ` with TUNABLE added to GLIBC_TUNABLES (other tunables kept), or None where it is
    there already or the C library is not glibc."""
    tunables = environ.get('GLIBC_TUNABLES', '')
    if platform.libc_ver()[0] != 'glibc' or 'glibc.malloc.hugetlb=' in tunables:
        return None
    return {**environ, 'GLIBC_TUNABLES': ':'.join(filter(None, (tunables, TUNABLE)))}


def _initial_environment() -> dict:
    """The environment this process started with (imports add to os.environ, e.g. jax's
    TPU_SKIP_MDS_QUERY, which the restarted command must not inherit); os.environ without /proc."""
    try:
        with open('/proc/self/environ', 'rb') as f:
            items = f.read().split(b'\0')
    except OSError:
        return dict(os.environ)
    return dict(os.fsdecode(item).split('=', 1) for item in items if b'=' in item)


def restart_with_huge_pages() -> None:
    """Replaces this process with the same command, in the environment it started with plus TUNABLE
    in GLIBC_TUNABLES, unless glibc.malloc.hugetlb is set already or the C library is not glibc
    (then returns). For a program's `if __name__ == '__main__':` block, before any work."""
    environ = huge_page_environment(_initial_environment())
    if environ is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
