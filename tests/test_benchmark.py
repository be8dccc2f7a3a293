"""The speed benchmark (experiments/benchmark.py) run end to end with the smallest settings.

Run by subprocess: the benchmark imports the Atari launcher, whose absl flags would clash with
other experiment modules imported into the test process. The timings themselves are not checked
(CPU speed varies); their bookkeeping is: keys, positivity, the ratio, the medians of the saved
samples, the replay shapes T per preset and the saved record.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = {'device', 'rainbow_step_ms', 'spr_step_ms', 'psrl_step_ms', 'psrl_over_spr',
                'env_steps_per_s', 'loop_steps_per_s', 'dmc_batch_size', 'drq_step_ms',
                'dmc_spr_step_ms', 'dmc_psrl_step_ms', 'dmc_psrl_over_drq', 'cost',
                'minatar_steps_per_s'}
# Small enough for ~1 min on a 2-core CPU, mostly compilation. The loop runs the cheap rainbow
# preset here (its learn function compiles in seconds, psrl's in ~50 s); the psrl learn step is
# exercised by the launcher tests.
SMALL = ['--quick', '--batch_size=4', '--repeats=2', '--loop_steps=2', '--env_steps=40',
         '--batched_envs=2', '--learning_starts=20', '--loop_preset=rainbow',
         '--dmc_presets=drq', '--dmc_batch_size=4', '--cost_presets=atari:rainbow,dmc:drq',
         '--minatar_presets=rainbow', '--minatar_seeds=2']
# Compilation dominates this test; XLA's cheapest backend settings halve it (64 s vs 110 s on a
# busy 2-core CPU). Only the bookkeeping is checked here, not the speed of the compiled code.
FAST_COMPILE = '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'


def benchmark(*args, timeout=600):
    env = dict(os.environ, XLA_FLAGS=f'{os.environ.get("XLA_FLAGS", "")} {FAST_COMPILE}'.strip())
    return subprocess.run([sys.executable, '-m', 'experiments.benchmark', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope='module')
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('benchmarks')
    result = benchmark(*SMALL, f'--out={out}')
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_last_line_is_the_summary_with_positive_finite_timings(small_run):
    _, result = small_run
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == SUMMARY_KEYS
    assert summary['device'] == 'cpu:cpu'
    absent = {'dmc_spr_step_ms', 'dmc_psrl_step_ms', 'dmc_psrl_over_drq'}   # not in --dmc_presets
    assert summary['dmc_batch_size'] == 4 and all(summary[key] is None for key in absent)
    for key in SUMMARY_KEYS - {'device', 'dmc_batch_size', 'cost', 'minatar_steps_per_s'} - absent:
        assert isinstance(summary[key], float) and math.isfinite(summary[key]), key
        assert summary[key] > 0, key
    assert summary['psrl_over_spr'] == pytest.approx(
        summary['psrl_step_ms'] / summary['spr_step_ms'], rel=1e-3)
    # XLA's accounting at each config's own batch (compiled, not run).
    assert set(summary['cost']) == {'atari', 'dmc'}
    rainbow, drq = summary['cost']['atari']['rainbow'], summary['cost']['dmc']['drq']
    assert (rainbow['batch'], drq['batch']) == (32, 512)
    assert rainbow['microbatches'] == drq['microbatches'] == 1
    for entry in (rainbow, drq):
        assert entry['temp_gb'] > 0 and entry['gflops'] > 0 and entry['gbytes'] > 0
    # A DrQ update at batch 512 reads at least o_k and the bootstrap observation (uint8 84x84x9).
    assert drq['gflops'] > rainbow['gflops'] and drq['gbytes'] > 2 * 512 * 84 * 84 * 9 / 1e9
    # The MinAtar loop rate of the one preset asked for, 2 seeds side by side.
    rates = summary['minatar_steps_per_s']
    assert set(rates) == {'rainbow'} and rates['rainbow'] > 0


def test_saved_record_matches_the_summary_and_its_samples(small_run):
    out, result = small_run
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    files = os.listdir(out)
    assert len(files) == 1 and files[0].startswith('cpu-cpu_') and files[0].endswith('Z.json')
    with open(os.path.join(out, files[0])) as f:
        record = json.load(f)
    assert {k: record[k] for k in SUMMARY_KEYS} == summary
    stamp = record['timestamp'].replace('-', '').replace(':', '')
    assert files[0] == f'cpu-cpu_{stamp}.json'
    assert f'saved {os.path.join(str(out), files[0])}' in result.stdout
    commit = record['commit']
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)
    assert record['jax_version'] and record['flags']['batch_size'] == 4
    assert record['flags']['presets'] == ['rainbow', 'spr', 'psrl']
    assert record['flags']['repeats'] == 2 and record['flags']['loop_steps'] == 2

    # Each step time is the median of its saved samples (2 repeats: the mean of the two).
    samples = record['step_ms_samples']
    for preset in ('rainbow', 'spr', 'psrl'):
        assert len(samples[preset]) == 2 and min(samples[preset]) > 0
        assert record[f'{preset}_step_ms'] == pytest.approx(np.median(samples[preset]), abs=2e-3)
    samples = record['dmc_step_ms_samples']
    assert set(samples) == {'drq'} and record['flags']['dmc_batch_size'] == 4
    assert record['drq_step_ms'] == pytest.approx(np.median(samples['drq']), abs=2e-3)
    # Replay subsequences: rainbow needs o_k (T = horizon 1 + 1), spr and psrl K + 1 = 6.
    assert record['details']['sequence_length'] == {'rainbow': 2, 'spr': 6, 'psrl': 6}

    for preset, minatar in record['details']['minatar'].items():
        assert minatar['seeds'] == 2 and minatar['env'] == 'breakout' and minatar['finite'] is True
        assert minatar['steps_per_s'] == pytest.approx(summary['minatar_steps_per_s'][preset],
                                                       rel=1e-3)
        assert minatar['minutes_per_100k'] == pytest.approx(
            100_000 / minatar['steps_per_s'] / 60, abs=0.06)
    loop = record['details']['loop']
    assert loop['steps'] == 2 and loop['updates_per_step'] == 2 and loop['finite'] is True
    # The replay is filled to max(learning_starts, max(n_step, horizon) + stack + 1) = max(20, 15).
    assert loop['fill_steps'] == 20
    assert loop['steps_per_s'] == pytest.approx(2 / loop['seconds'], rel=1e-2)
    assert summary['loop_steps_per_s'] == pytest.approx(loop['steps_per_s'], rel=1e-3)
    assert 0 <= loop['env_seconds'] <= loop['seconds']
    assert record['details']['env_steps_per_s_batched'] > 0


@pytest.mark.parametrize('flag, message', [
    ('--presets=rainbow,bogus', "error: unknown preset 'bogus'"),
    ('--dmc_batch_size=6', 'error: --dmc_batch_size must be a positive multiple of 4'),
    ('--cost_presets=dmc:bogus', "error: --cost_presets entry 'dmc:bogus'"),
    ('--minatar_presets=drq', "error: unknown MinAtar preset 'drq'"),
    ('--minatar_env=pong', "error: unknown MinAtar game 'pong'"),
])
def test_bad_input_is_refused_in_one_line_without_writing(tmp_path, flag, message):
    result = benchmark(flag, f'--out={tmp_path}', timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message), lines[-1]
    assert 'Traceback' not in result.stderr
    assert os.listdir(tmp_path) == []
