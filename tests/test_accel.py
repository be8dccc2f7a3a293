"""Accelerator installs: the Makefile's ACCEL commands, and tools/check_accel.py's checks (the
resolver itself runs in `make check-accel`; here its report is hand-made, or the index is dead)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))

import check_accel  # noqa: E402


def make_dry_run(*args):
    """The commands `make` would run (-n), every target out of date (-B)."""
    return subprocess.run(['make', '-n', '-B', *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize('accel, requirements, uninstalled', [
    ('cpu', '-r requirements.txt ', 'jax-cuda12-plugin jax-cuda12-pjrt libtpu'),
    ('cuda12', '-r requirements.txt -r requirements-cuda12.txt', 'libtpu'),
    ('tpu', '-r requirements.txt -r requirements-tpu.txt', 'jax-cuda12-plugin jax-cuda12-pjrt'),
])
def test_install_adds_the_accelerator_pins_and_removes_other_plugins(accel, requirements,
                                                                     uninstalled):
    result = make_dry_run('install', f'ACCEL={accel}')
    assert result.returncode == 0, result.stderr
    assert f'.venv/bin/pip install {requirements} && ' in result.stdout
    assert f'.venv/bin/pip uninstall -y -q {uninstalled} && ' in result.stdout
    assert f'touch .venv/.installed-{accel}\n' in result.stdout
    for target in ('run', 'test'):   # both install for the same ACCEL first
        assert f'touch .venv/.installed-{accel}\n' in make_dry_run(target, f'ACCEL={accel}').stdout


def test_make_test_checks_the_accelerator_pins_before_the_suite():
    lines = make_dry_run('test').stdout.splitlines()
    check = lines.index('.venv/bin/python tools/check_accel.py cuda12 tpu')
    assert lines.index('.venv/bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder') > check


def test_unknown_accelerator_stops_make():
    result = make_dry_run('install', 'ACCEL=rocm')
    assert result.returncode == 2
    assert 'ACCEL=rocm is not one of: cpu cuda12 tpu' in result.stderr


def test_unreachable_index_is_one_line():
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL='http://127.0.0.1:9/simple')
    env.pop('PIP_FIND_LINKS', None)
    env.pop('PIP_EXTRA_INDEX_URL', None)
    result = subprocess.run([sys.executable, 'tools/check_accel.py', 'cuda12', 'tpu'], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert result.stdout == ''
    assert result.stderr == ('error: cannot reach the package index (127.0.0.1: Connection '
                             'refused): check-accel needs network access to PyPI\n')


def _package(name, version, *requires):
    return {'metadata': {'name': name, 'version': version, 'requires_dist': list(requires)}}


# A resolver report as pip writes it: jax[gpu] pulls plugin[full] (whose 'full' extra adds lib-a,
# which needs lib-b) and jaxlib (pinned by requirements.txt, so not followed to ml-dtypes).
REPORT = {'environment': {'sys_platform': 'linux'}, 'install': [
    _package('jax', '1.0', 'numpy', 'jaxlib==1.0; extra == "gpu"',
             'plugin[full]==1.0; extra == "gpu"', 'other==2; extra == "tpu"'),
    _package('jaxlib', '1.0', 'ml-dtypes'),
    _package('ml_dtypes', '0.5'),
    _package('numpy', '2.0'),
    _package('Plugin', '1.0', 'lib-a>=1; sys_platform == "linux" and extra == "full"',
             'lib-c; sys_platform == "win32" and extra == "full"'),
    _package('lib-a', '1.5', 'lib_b'),
    _package('lib-b', '3.0'),
]}


def test_pulled_in_follows_extras_markers_and_stops_at_base_pins():
    assert check_accel.pulled_in(REPORT, 'gpu', {'jax', 'jaxlib', 'numpy'}) == {
        'plugin': '1.0', 'lib-a': '1.5', 'lib-b': '3.0'}


@pytest.mark.parametrize('pins, message', [
    (['jax[gpu]==1.0', 'plugin[full]==1.0', 'lib-a==1.5', 'lib-b==3.0'], None),
    (['jax[gpu]==1.0', 'plugin[full]==1.0', 'lib-a==1.5'],
     'jax[gpu] pulls in lib-b==3.0, not pinned here'),
    (['jax[gpu]==1.0', 'plugin[full]==1.0', 'lib-a==1.5', 'lib-b==3.0', 'extra-lib==1'],
     'pins extra-lib, which jax[gpu] does not pull in'),
    (['jax[gpu]==0.9', 'plugin[full]==1.0', 'lib-a==1.5', 'lib-b==3.0'],
     'requirements-gpu.txt must pin jax[gpu]==1.0 (the jax of requirements.txt)'),
    (['jax[gpu]==1.0', 'plugin[full]>=1.0'],
     "requirements-gpu.txt:2: 'plugin[full]>=1.0' is not an exact name==version pin"),
])
def test_check_wants_exactly_what_the_extra_pulls_in(tmp_path, monkeypatch, pins, message):
    (tmp_path / 'requirements.txt').write_text('# base\njax==1.0\njaxlib==1.0\nnumpy==2.0\n')
    (tmp_path / 'requirements-gpu.txt').write_text('\n'.join(pins) + '\n')
    monkeypatch.setattr(check_accel, 'ROOT', str(tmp_path))
    monkeypatch.setattr(check_accel, 'resolve', lambda files, pip_args=(): json.loads(
        json.dumps(REPORT)))
    if message is None:
        assert check_accel.check('gpu').startswith(
            'requirements-gpu.txt: resolves with requirements.txt, and pins the 3 packages '
            'jax[gpu] pulls in (')
    else:
        with pytest.raises(check_accel.CheckFailed) as failure:
            check_accel.check('gpu')
        assert str(failure.value) == message
