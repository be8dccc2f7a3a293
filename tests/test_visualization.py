"""psrl_jax.visualization against hand-worked Middlebury colours and an independent per-pixel port
of the Middlebury code; experiments.visualize and experiments.gradient_shares on a tiny run made by
the launcher, and bad input."""
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import psrl, visualization

import numpy_reference
import run_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b'\x89PNG\r\n\x1a\n'


def middlebury_pixel(u, v):
    """One pixel of Middlebury's computeColor.m, written out by hand (u, v already normalised)."""
    wheel = []
    for n, ramp in ((15, lambda i: (255, math.floor(255 * i / 15), 0)),
                    (6, lambda i: (255 - math.floor(255 * i / 6), 255, 0)),
                    (4, lambda i: (0, 255, math.floor(255 * i / 4))),
                    (11, lambda i: (0, 255 - math.floor(255 * i / 11), 255)),
                    (13, lambda i: (math.floor(255 * i / 13), 0, 255)),
                    (6, lambda i: (255, 0, 255 - math.floor(255 * i / 6)))):
        wheel += [ramp(i) for i in range(n)]
    radius = math.sqrt(u * u + v * v)
    a = math.atan2(-v, -u) / math.pi
    fk = (a + 1) / 2 * (len(wheel) - 1)
    k0 = int(math.floor(fk))
    k1 = (k0 + 1) % len(wheel)
    f = fk - k0
    pixel = []
    for c in range(3):
        col0, col1 = wheel[k0][c] / 255, wheel[k1][c] / 255      # as computeColor.m
        col = (1 - f) * col0 + f * col1
        col = 1 - radius * (1 - col) if radius <= 1 else col * 0.75
        pixel.append(math.floor(255 * col))
    return pixel


def one_pixel(dx, dy, max_magnitude=1.0):
    return visualization.flow_to_color(np.array([[[dx, dy]]]), max_magnitude)[0, 0].tolist()


def test_zero_flow_is_white():
    assert (visualization.flow_to_color(np.zeros((5, 7, 2))) == 255).all()
    assert (visualization.flow_to_color(np.zeros((5, 7, 2)), max_magnitude=3.0) == 255).all()


def test_known_colours_of_the_wheel():
    assert one_pixel(1.0, 0.0) == [255, 0, 0]          # +x at the maximum: the wheel's red
    assert one_pixel(-1.0, 0.0) == [0, 209, 255]       # -x: wheel[27] = (0, 255 - 46, 255)
    assert one_pixel(0.0, 1.0) == [255, 229, 0]        # +y (down): halfway wheel[13] and wheel[14]
    assert one_pixel(0.0, -1.0) == [88, 0, 255]        # -y: halfway wheel[40] and wheel[41]
    assert one_pixel(0.5, 0.0) == [255, 127, 127]      # half the maximum: half saturated
    assert one_pixel(2.0, 0.0) == [191, 0, 0]          # beyond the maximum: darkened x 0.75
    assert one_pixel(3.0, 0.0, max_magnitude=3.0) == [255, 0, 0]


def test_opposite_directions_get_different_hues():
    for dx, dy in ((1, 0), (0, 1), (0.6, -0.8), (-0.3, 0.4)):
        a, b = np.array(one_pixel(dx, dy, 1.0)), np.array(one_pixel(-dx, -dy, 1.0))
        assert np.abs(a - b).max() > 100, (dx, dy, a, b)


def test_matches_the_middlebury_code_pixel_by_pixel():
    flow = np.random.default_rng(0).normal(size=(6, 9, 2)) * 3.0
    scale = 4.0
    expected = [[middlebury_pixel(u / scale, v / scale) for u, v in row] for row in flow]
    colours = visualization.flow_to_color(flow, scale)
    assert colours.shape == (6, 9, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours, np.array(expected))


def test_default_scale_is_the_largest_magnitude():
    flow = np.array([[[1.0, 0.0], [2.0, 0.0]]])
    np.testing.assert_array_equal(visualization.flow_to_color(flow),
                                  [[[255, 127, 127], [255, 0, 0]]])


def test_bad_flow_shape_raises():
    with pytest.raises(ValueError, match=r'\[H, W, 2\]'):
        visualization.flow_to_color(np.zeros((4, 4, 3)))


def test_colour_key():
    key = visualization.color_wheel_legend(21)
    assert key.shape == (21, 21, 3) and key.dtype == np.uint8
    assert (key[10, 10] == 255).all() and (key[0, 0] == 255).all()        # centre, outside corner
    assert key[10, 20].tolist() == [255, 0, 0]                             # right rim: +x
    wheel = visualization.color_wheel()
    assert wheel.shape == (55, 3) and wheel[0].tolist() == [255, 0, 0]


CONFIG = psrl.PSRLConfig(num_actions=3)


def test_external_flows_are_c_of_target_later_and_online_earlier():
    """c^ext_{k+1->k} = C(z^t_{k+1}, z^q_k): C from its definition (numpy_reference) with the
    online parameters, on the target encoder's later and the online encoder's earlier features."""
    key_obs, key_online, key_target = jax.random.split(jax.random.PRNGKey(0), 3)
    observations = jax.random.uniform(key_obs, (3, 84, 84, 4))
    online = psrl.init_params(key_online, CONFIG, (84, 84, 4))
    target = psrl.init_params(key_target, CONFIG, (84, 84, 4))
    flows = visualization.external_flows(online, target, observations, CONFIG)
    encoder = psrl.make_modules(CONFIG).encoder
    z_t = np.asarray(encoder.apply(target['encoder'], observations[1:]))
    z_q = np.asarray(encoder.apply(online['encoder'], observations[:-1]))
    expected = numpy_reference.correspondence_module(
        jax.tree.map(np.asarray, online['correspondence']), z_t, z_q, CONFIG.max_displacement)
    assert flows.shape == (2, 7, 7, 2) and np.abs(expected).max() > 0.1
    np.testing.assert_allclose(flows, expected, atol=1e-4)
    swapped = visualization.external_flows(target, online, observations, CONFIG)
    assert not np.allclose(flows, swapped)


def test_external_flows_use_the_map_c_matches_on():
    # correspondence_map='early': C of the first convolution's 20x20 maps, not of the final 7x7.
    config = dataclasses.replace(CONFIG, correspondence_map='early')
    observations = jax.random.uniform(jax.random.PRNGKey(1), (3, 84, 84, 4))
    params = psrl.init_params(jax.random.PRNGKey(2), config, (84, 84, 4))
    flows = visualization.external_flows(params, params, observations, config)
    z = psrl.make_modules(config).encoder.apply(params['encoder'], observations, early=True)
    expected = numpy_reference.correspondence_module(
        jax.tree.map(np.asarray, params['correspondence']), np.asarray(z[1:]), np.asarray(z[:-1]),
        config.max_displacement)
    assert flows.shape == (2, 20, 20, 2)
    np.testing.assert_allclose(flows, expected, atol=1e-4)


def test_warp_previous_moves_frames_by_the_up_sampled_flow():
    frames = np.random.default_rng(1).uniform(size=(2, 84, 84, 1)).astype(np.float32)
    cells = np.zeros((1, 7, 7, 2), np.float32)
    warped, pixels = visualization.warp_previous(jnp.asarray(frames), jnp.asarray(cells))
    np.testing.assert_allclose(warped, frames[:1], atol=1e-6)
    cells[..., 0] = 1.0                                        # one cell = 84 / 7 = 12 pixels right
    warped, pixels = visualization.warp_previous(jnp.asarray(frames), jnp.asarray(cells))
    np.testing.assert_allclose(pixels[..., 0], 12.0, rtol=1e-6)
    np.testing.assert_allclose(warped[0, :, :-12], frames[0, :, 12:], atol=1e-5)
    np.testing.assert_allclose(warped[0, :, -11:], 0.0, atol=1e-6)      # sampled outside: zero


def test_figures_render_to_png():
    rng = np.random.default_rng(2)
    frames = rng.uniform(size=(3, 84, 84, 1))
    flows = rng.normal(size=(2, 84, 84, 2))
    for fig, axes in ((visualization.frames_figure(frames), 3),
                      (visualization.flows_figure(flows), 3),
                      (visualization.warp_figure(frames[:2], frames[1:], frames[1:]), 8),
                      (visualization.correspondence_figure(frames[:2], frames[1:], flows,
                                                           frames[1:], suptitle='x'), 11)):
        assert len([ax for ax in fig.axes if ax.images]) == axes
        assert visualization.figure_to_png(fig).startswith(PNG)
    rgb = visualization.frames_figure((rng.uniform(size=(2, 16, 16, 3)) * 255).astype(np.uint8))
    assert visualization.figure_to_png(rgb).startswith(PNG)


# experiments.visualize ---------------------------------------------------------------------------

TRAIN = ['--env=Pong', '--total_steps=240', '--learning_starts=200', '--eval_episodes=1',
         '--log_every=120', '--config.replay.batch_size=4', '--config.replay.capacity=1000']


def run(module, *args, timeout=900):
    return subprocess.run([sys.executable, '-m', f'experiments.{module}', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('visualize') / 'pong'
    result = run('train_atari', *TRAIN, f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_script_writes_pictures_of_a_trained_run(trained_run, tmp_path):
    result = run('visualize', f'--workdir={trained_run}', '--pairs=3', timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'checkpoint at step 240' in result.stdout and 'with zero flow' in result.stdout
    # C's ground-truth checks on the drawn frames (no single-object channel on Atari)
    line = re.search(r'^c_shift_epe (\S+) \(zero flow (\S+)\), c_warp_gain (\S+)$', result.stdout,
                     re.MULTILINE)
    assert line, result.stdout
    shift, zero, gain = map(float, line.groups())
    assert 0 < zero <= 8 * 2 ** 0.5 and shift >= 0 and gain > 0   # each copy shifted by 0..8 px
    out = trained_run / 'visualize'                                  # the default --out
    for name in ('frames.png', 'flows.png', 'warped.png', 'overview.png'):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, name
        assert str(out / name) in result.stdout
    other = tmp_path / 'pictures'
    result = run('visualize', f'--workdir={trained_run}', f'--out={other}', timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(other)) == ['flows.png', 'frames.png', 'overview.png', 'warped.png']


def copy_config(trained_run, path, edit=None):
    path.mkdir()
    record = json.loads((trained_run / 'config.json').read_text())
    if edit:
        edit(record)
    (path / 'config.json').write_text(json.dumps(record))
    return path


def spr(record):
    record['config']['algorithm'] = 'spr'
    record['config']['psrl'].update(correspondence=False, cat=False, internal=False)


@pytest.mark.parametrize('case,needle', [
    ('no_workdir', '--workdir is required'),
    ('missing', 'holds no config.json'),
    ('no_checkpoint', 'has no checkpoint'),
    ('spr', 'no correspondence module C'),
    ('bad_flag', "Unknown command line flag 'nope'"),
    ('bad_pairs', '--pairs must be >= 1'),
])
def test_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, case, needle):
    args = {
        'no_workdir': [],
        'missing': [f'--workdir={tmp_path / "nothing"}'],
        'no_checkpoint': [f'--workdir={copy_config(trained_run, tmp_path / "fresh")}'],
        'spr': [f'--workdir={copy_config(trained_run, tmp_path / "spr", spr)}'],
        'bad_flag': [f'--workdir={trained_run}', '--nope=1'],
        'bad_pairs': [f'--workdir={trained_run}', '--pairs=0'],
    }[case]
    result = run('visualize', *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and needle in lines[0], result.stderr
    assert 'Traceback' not in result.stderr
    if case == 'no_checkpoint':
        assert os.listdir(tmp_path / 'fresh') == ['config.json']    # nothing written


# experiments.gradient_shares on the same run -----------------------------------------------------

GROUPS = {'encoder', 'q_head', 'correspondence', 'conv1x1', 'projection', 'predictor', 'transition'}


def test_gradient_shares_of_a_trained_run(trained_run, tmp_path):
    out = tmp_path / 'shares.json'
    result = run('gradient_shares', f'--workdir={trained_run}', '--batches=2', f'--out={out}',
                 timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record == json.loads(out.read_text())
    assert record['step'] == 240 and record['updates'] > 0 and record['batches'] == 2
    assert record['rl_loss'] == 'C51' and 'RL (C51)' in result.stdout
    norms = record['norms']
    assert set(norms) == GROUPS
    # which term reaches which module: the head only the C51 loss, C's scalars only L_c and, through
    # CAT's warp, L_sim; the shared encoder all three. The L_sim and L_c parts are differences of
    # gradients (terms.term_gradients): where a term does not reach, only rounding is left.
    rounding = 1e-6 * max(max(n.values()) for n in norms.values())
    assert norms['q_head']['rl'] > 0 and max(norms['q_head']['sim'], norms['q_head']['c']) < rounding
    assert norms['correspondence']['rl'] == 0 and norms['correspondence']['c'] > rounding
    assert norms['conv1x1']['rl'] == 0 and norms['conv1x1']['c'] < rounding < norms['conv1x1']['sim']
    assert min(norms['encoder'].values()) > 0
    assert -1 <= record['encoder_cos_c_rest'] <= 1
    assert 'encoder' in result.stdout and "cosine of L_c's encoder gradient" in result.stdout


@pytest.mark.parametrize('case,needle', [
    ('no_checkpoint', 'has no checkpoint'),
    ('no_such_step', 'has no checkpoint at step 7 (it has 240)'),
    ('corrupt', 'is unreadable'),
    ('bad_batches', '--batches must be >= 1'),
])
def test_gradient_shares_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, case, needle):
    workdir = trained_run
    if case == 'corrupt':
        workdir = tmp_path / 'corrupt'
        shutil.copytree(trained_run, workdir)
        data = next(p for p in sorted((workdir / 'checkpoints' / '240').rglob('*'))
                    if p.is_file() and p.stat().st_size > 1000)
        data.write_bytes(b'\0' * data.stat().st_size)
    elif case == 'no_checkpoint':
        workdir = copy_config(trained_run, tmp_path / case)
    before = run_dirs.snapshot(workdir)
    args = {'no_such_step': ['--step=7'], 'bad_batches': ['--batches=0']}.get(case, [])
    result = run('gradient_shares', f'--workdir={workdir}', *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and needle in lines[0], result.stderr
    assert run_dirs.snapshot(workdir) == before
