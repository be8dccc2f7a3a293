"""Checks the accelerator pins with pip's resolver, installing and downloading no wheel.

    python tools/check_accel.py cuda12 tpu

For each accelerator A, `pip install --dry-run --ignore-installed --report` resolves requirements.txt
together with requirements-A.txt for this interpreter. pip reads each wheel's metadata from the
index (PEP 658) or, where the index lacks it, from the wheel's end by HTTP range requests
(`--use-feature=fast-deps`), so the 0.7 GB cuDNN wheel is not downloaded. The pins must resolve,
and they must be exactly what jax[A] pulls in: every package reached from jax's `extra == "A"`
requirements (through the resolved packages' own requirements, stopping at packages requirements.txt
pins) is pinned with == in requirements-A.txt, and nothing else is. Prints one line per accelerator;
a failure is one `error:` line and exit status 1; an index out of reach is one line for all.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What pip prints when it cannot reach an index (socket errors first, then urllib3's wrappers).
UNREACHABLE = ('Connection refused', 'Temporary failure in name resolution',
               'Name or service not known', 'Network is unreachable', 'timed out', 'ProxyError',
               'SSLError', 'NewConnectionError', 'ConnectTimeoutError', 'ReadTimeoutError',
               'Max retries exceeded')


class CheckFailed(Exception):
    """One line saying why an accelerator's pins fail the check."""


class Unreachable(CheckFailed):
    """pip could not reach the package index, so nothing was checked."""


def read_pins(path: str) -> dict:
    """canonical name -> Requirement of each line of a requirements file (comments dropped).

    Raises CheckFailed for a line that is not an exact `name[extras]==version` pin."""
    pins = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            requirement = Requirement(line)
            specs = list(requirement.specifier)
            if len(specs) != 1 or specs[0].operator != '==' or requirement.marker:
                raise CheckFailed(f'{os.path.basename(path)}:{number}: {line!r} is not an exact '
                                  f'name==version pin')
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def resolve(requirement_files, pip_args=()) -> dict:
    """pip's installation report (JSON) for the requirement files, as a fresh environment would
    get them. Raises CheckFailed with pip's reason when they do not resolve or the index is out of
    reach."""
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, 'report.json')
        command = [sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed',
                   '--use-feature=fast-deps', '--disable-pip-version-check', '--timeout', '30',
                   '--retries', '2',
                   '--report', report, *pip_args]
        for path in requirement_files:
            command += ['-r', path]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        output = result.stdout + result.stderr
        if result.returncode:
            reason = next((m for m in UNREACHABLE if m in output), None)
            if reason:
                host = re.search(r"host='([^']+)'", output)
                raise Unreachable(f'cannot reach the package index ({host.group(1) + ": " if host else ""}'
                                  f'{reason}): check-accel needs network access to PyPI')
            lines = [line.strip() for line in output.splitlines() if line.strip()]
            error = next((line for line in lines if line.startswith('ERROR')), lines[-1] if lines
                         else 'no output')
            raise CheckFailed(f'does not resolve with requirements.txt (pip: {error[:300]})')
        with open(report) as f:
            return json.load(f)


def pulled_in(report: dict, extra: str, stop: set) -> dict:
    """canonical name -> resolved version of every package that jax's `extra` requirements pull
    in, following the resolved packages' requirements (with their requested extras) and stopping
    at the names in `stop`."""
    packages = {canonicalize_name(p['metadata']['name']): p['metadata'] for p in report['install']}
    environment = dict(default_environment(), **report.get('environment', {}))

    def requirements(name: str, extras, only_extra: bool):
        for line in packages[name].get('requires_dist') or []:
            requirement = Requirement(line)
            marker = requirement.marker
            active = marker is None or any(marker.evaluate(dict(environment, extra=e))
                                           for e in set(extras) | {''})
            plain = marker is None or marker.evaluate(dict(environment, extra=''))
            if active and not (only_extra and plain):
                yield requirement

    found, queue = {}, list(requirements('jax', [extra], only_extra=True))
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in stop or (name in found and not requirement.extras):
            continue
        found[name] = packages[name]['version']
        queue += requirements(name, requirement.extras, only_extra=False)
    return found


def check(accelerator: str, pip_args=()) -> str:
    """Checks requirements-<accelerator>.txt (see the module docstring); returns the line to
    print. Raises CheckFailed."""
    base, extra_file = 'requirements.txt', f'requirements-{accelerator}.txt'
    base_pins = read_pins(os.path.join(ROOT, base))
    pins = read_pins(os.path.join(ROOT, extra_file))
    jax = pins.get('jax')
    if jax is None or jax.extras != {accelerator} or jax.specifier != base_pins['jax'].specifier:
        raise CheckFailed(f'{extra_file} must pin jax[{accelerator}]{base_pins["jax"].specifier} '
                          f'(the jax of {base})')
    start = time.time()
    report = resolve([base, extra_file], pip_args)
    needed = pulled_in(report, accelerator, set(base_pins))
    unpinned = sorted(set(needed) - set(pins))
    if unpinned:
        raise CheckFailed(f'jax[{accelerator}] pulls in ' +
                          ', '.join(f'{n}=={needed[n]}' for n in unpinned) + ', not pinned here')
    stale = sorted(set(pins) - set(needed) - {'jax'})
    if stale:
        raise CheckFailed(f'pins {", ".join(stale)}, which jax[{accelerator}] does not pull in')
    return (f'{extra_file}: resolves with {base}, and pins the {len(needed)} packages '
            f'jax[{accelerator}] pulls in ({time.time() - start:.1f} s)')


def main(accelerators) -> int:
    if not accelerators:
        print('error: name the accelerators to check, e.g. cuda12 tpu', file=sys.stderr)
        return 2
    status = 0
    for accelerator in accelerators:
        try:
            print(check(accelerator), flush=True)
        except Unreachable as err:   # the same for every accelerator: one line
            print(f'error: {err}', file=sys.stderr, flush=True)
            return 1
        except (CheckFailed, OSError) as err:
            print(f'error: requirements-{accelerator}.txt: {err}', file=sys.stderr, flush=True)
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
