"""psrl_jax.host_memory: the launchers' restart under glibc's huge-page tunable, and what it does to
a jitted step's temporary block (page faults a call, in fresh processes)."""
import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from psrl_jax import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLIBC = platform.libc_ver()[0] == 'glibc'


def run_python(code, *args, **environ):
    """stdout lines of `python -c code args` in an environment without GLIBC_TUNABLES, plus
    `environ`."""
    env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**env, **environ})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


@pytest.mark.skipif(not GLIBC, reason='a glibc tunable')
def test_huge_page_environment_adds_the_tunable_once():
    assert host_memory.huge_page_environment({'A': '1'}) == {
        'A': '1', 'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}
    assert host_memory.huge_page_environment({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'}) == {
        'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'}
    for set_already in ('glibc.malloc.hugetlb=1', 'glibc.malloc.hugetlb=0:glibc.malloc.mxfast=0'):
        assert host_memory.huge_page_environment({'GLIBC_TUNABLES': set_already}) is None


@pytest.mark.skipif(not GLIBC, reason='a glibc tunable')
def test_restart_runs_the_same_command_once_under_the_tunable():
    code = '''
        import os, sys
        from psrl_jax import host_memory
        print('started', sys.argv[1:], flush=True)
        host_memory.restart_with_huge_pages()
        print('tunables', os.environ['GLIBC_TUNABLES'])
    '''
    # Printed before the restart, then by the restarted process with the same arguments.
    assert run_python(code, 'x', '--flag=1') == ["started ['x', '--flag=1']",
                                          "started ['x', '--flag=1']",
                                          'tunables glibc.malloc.hugetlb=1']


def _transparent_huge_pages() -> str:
    """The kernel's mode: 'always', 'madvise' (what the tunable asks for), 'never' or ''."""
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return f.read().split('[')[1].split(']')[0]
    except (OSError, IndexError):
        return ''


# A step whose temporary x @ x.T is 64 MB (16,384 pages of 4 KiB): glibc maps it afresh each call.
PROBE = '''
    import json, resource
    import jax, jax.numpy as jnp
    step = jax.jit(lambda x: (x @ x.T) @ x[:, :1])
    x = jnp.ones((4096, 8), jnp.float32)
    temp = step.lower(x).compile().memory_analysis().temp_size_in_bytes
    step(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step(x).block_until_ready()
    print(json.dumps({'temp': temp,
                      'faults': (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10}))
'''


@pytest.mark.skipif(not GLIBC or _transparent_huge_pages() != 'madvise',
                    reason='needs glibc and transparent huge pages on request ("madvise"; '
                           '"always" backs the block with them anyway)')
def test_huge_pages_fault_in_the_temporary_block_in_few_pieces():
    plain = json.loads(run_python(PROBE)[-1])
    huge = json.loads(run_python(PROBE, GLIBC_TUNABLES=host_memory.TUNABLE)[-1])
    pages = plain['temp'] / 4096
    assert plain['temp'] >= 64 << 20
    # Measured here: 16,390 faults a call in 4 KiB pages, 245 with the tunable (2 MiB pages plus
    # the small blocks around them).
    assert plain['faults'] > 0.9 * pages, plain
    assert huge['faults'] < 0.05 * pages, huge
