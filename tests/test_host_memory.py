"""psrl_jax.host_memory: after reuse_freed_memory, a jitted step reuses its temporary block instead
of page-faulting a fresh one each call (in a fresh process: the settings must precede JAX's CPU
backend, and this test process has one already)."""
import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A step whose temporary x @ x.T is 64 MB (16,384 pages of 4 KiB), over glibc's 32 MB mmap bound.
SCRIPT = textwrap.dedent('''
    import json, resource
    from psrl_jax import host_memory
    applied = host_memory.reuse_freed_memory()
    import jax, jax.numpy as jnp
    step = jax.jit(lambda x: (x @ x.T) @ x[:, :1])
    x = jnp.ones((4096, 8), jnp.float32)
    temp = step.lower(x).compile().memory_analysis().temp_size_in_bytes
    faults = []                     # page faults per call, in groups of 5 calls
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step(x).block_until_ready()
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
    print(json.dumps({'applied': applied, 'temp': temp, 'faults': faults}))
''')


def probe():
    result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='the settings are glibc mallopt')
def test_a_step_reuses_its_temporary_block():
    reused = probe()
    assert reused['applied'] is True and reused['temp'] >= 64 << 20
    # The heap grows to its steady size over the first calls (how many varies from run to run);
    # then a call faults in no page of its block: the last 4 groups (20 calls) below 1% of its
    # pages. Without the settings every call faults in all of them (16,390 a call on this CPU).
    pages = reused['temp'] / 4096
    assert max(reused['faults'][-4:]) < 0.01 * pages, reused['faults']
