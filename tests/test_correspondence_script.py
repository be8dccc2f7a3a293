"""experiments.correspondence, the script behind C's ground-truth tables (WORKSPACE_NOTES.md, "C
against ground truth"): on MinAtar breakout's real frames, L_c alone must teach C to warp the next
frame better than it did untrained, and the reported before/after/curve must be the checks of the
params at those steps; --objective=full trains PSRL's whole objective on the played actions; bad
flags are one error line."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BREAKOUT = ['--suite=minatar', '--env=breakout', '--config=experiments/configs/minatar.py:psrl',
            '--frames=64']


def correspondence(*args):
    return subprocess.run([sys.executable, '-m', 'experiments.correspondence', *BREAKOUT, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_l_c_teaches_c_to_warp_breakout_frames(tmp_path):
    out = tmp_path / 'c.json'
    result = correspondence('--steps=100', '--check_every=50', f'--out={out}')
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == printed
    curve = printed['curve']
    assert [row['step'] for row in curve] == [0, 50, 100]
    assert printed['before'] == {k: v for k, v in curve[0].items() if k != 'step'}
    assert printed['after'] == {k: v for k, v in curve[-1].items() if k != 'step'}
    terms = printed['terms']   # the objective's terms, averaged over the steps since the last check
    assert [row['step'] for row in terms] == [50, 100]
    for row in terms:   # L_c alone: the loss is lambda_c (1) L_c, and no L_sim term is logged
        assert abs(row['loss'] - row['loss_c']) <= 1e-5 * abs(row['loss_c'])
        assert row['loss_sim'] == 0 and 'cos_tr' not in row
    assert terms[1]['loss'] < terms[0]['loss']
    before, after = printed['before'], printed['after']
    # Measured (seed 0, this CPU): c_warp_gain 0.62 untrained, 0.33 at 50 steps, 0.24 at 100; a C
    # that L_c did not train (crossed params, checks of the initial state) stays at 0.62.
    assert after['c_warp_gain'] < 0.7 * before['c_warp_gain']
    assert after['c_warp_gain'] < 0.5
    # the ball: C's flow at its new cell points back to its old one better than zero flow does
    assert after['c_object_epe'] < 0.5 * after['c_object_epe_zero']
    assert printed['objective_trained'] == 'lc' and not printed['objective']['cat']
    assert printed['loss_last'] < printed['loss_first']


def test_full_objective_trains_cat_aat_and_l_c_on_the_played_actions(tmp_path):
    lc = json.loads(correspondence('--steps=20').stdout.strip().splitlines()[-1])
    result = correspondence('--steps=20', '--objective=full')
    assert result.returncode == 0, result.stderr[-2000:]
    full = json.loads(result.stdout.strip().splitlines()[-1])
    assert full['objective_trained'] == 'full'
    assert full['objective']['cat'] and full['objective']['aat'] and full['objective']['l1']
    # the same frames, initialisation and augmentation: only the objective differs; the full
    # objective's checks add L_sim's y_shift_cos (a cosine)
    assert {k: full['before'][k] for k in lc['before']} == lc['before']
    assert 'y_shift_cos' not in lc['after'] and -1 <= full['after']['y_shift_cos'] <= 1
    assert abs(full['loss_first'] - lc['loss_first']) > 1e-3
    assert full['loss_last'] < full['loss_first']
    assert all(abs(v) < float('inf') for v in full['after'].values())
    # An EMA target starts as the online network (the same first loss) and then lags it.
    ema = json.loads(correspondence('--steps=20', '--objective=full', '--target_tau=0.5'
                                    ).stdout.strip().splitlines()[-1])
    assert (full['target_tau'], ema['target_tau']) == (1.0, 0.5)
    assert ema['loss_first'] == full['loss_first'] and ema['loss_last'] != full['loss_last']


def test_subsequences_stay_inside_episodes_with_the_actions_between_their_frames():
    # frames 0..6 hold their own index; episodes [0, 0, 0, 1, 1, 1, 1]; action i is 10 + i
    script = '''
import numpy as np
from experiments import correspondence
frames = np.arange(7).reshape(7, 1, 1, 1)
observations, actions = correspondence.subsequences(
    frames, np.array([0, 0, 0, 1, 1, 1, 1]), 10 + np.arange(7), 3)
print(observations.reshape(len(observations), 3).tolist(), actions.tolist())
'''
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split('\n')[0] == ('[[0, 1, 2], [3, 4, 5], [4, 5, 6]] '
                                            '[[10, 11], [13, 14], [14, 15]]')


def test_a_step_descends_the_objective_against_the_given_target_and_moves_the_target_by_tau():
    # One SGD step of size 1 from params p with a separate target network q (tau 0.5): p moves by
    # minus the gradient of psrl_loss(p, q) (not of psrl_loss(p, p): the target is used), and q to
    # the midpoint of q and the new p.
    script = '''
import jax, jax.numpy as jnp, numpy as np, optax
from experiments import correspondence
from psrl_jax import psrl
config = psrl.PSRLConfig(encoder='minatar', frame_channels=4, num_actions=6, horizon=3,
                         max_displacement=2, projection_dim=32, augmentation=('grid_shift',))
p, q = (psrl.init_params(jax.random.PRNGKey(seed), config, (10, 10, 4)) for seed in (0, 1))
rng = np.random.default_rng(0)
t = config.sequence_length
batch = psrl.PSRLBatch(jnp.asarray(rng.integers(0, 2, (4, t, 10, 10, 4), dtype=np.uint8)),
                       jnp.asarray(rng.integers(0, 6, (4, t - 1))), jnp.ones((4, t), bool))
key = jax.random.PRNGKey(2)
sgd = optax.sgd(1.0)
new, target, _, metrics = jax.jit(correspondence.make_step(config, sgd, 0.5))(
    p, q, sgd.init(p), batch, key)
grad = jax.jit(lambda target: jax.grad(
    lambda x: psrl.psrl_loss(x, target, batch, key, config)[0].mean())(p))
error = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in
                         zip(jax.tree.leaves(a), jax.tree.leaves(b)))
expected = grad(q)
scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(expected))
moved = jax.tree.map(lambda a, b: a - b, p, new)
midpoint = jax.tree.map(lambda a, b: (a + b) / 2, new, q)
print(error(moved, expected) / scale, error(expected, grad(p)) / scale, error(target, midpoint),
      abs(float(metrics['loss']) / float(
          psrl.psrl_loss(p, q, batch, key, config)[0].mean()) - 1))
'''
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    moved, other_target, midpoint, loss = map(float, result.stdout.split())
    assert moved < 1e-4 and other_target > 1e-2 and midpoint < 1e-6 and loss < 1e-5


def test_bad_flags_are_one_error_line():
    for bad, names in (('--steps=-1', '--steps'), ('--check_every=-5', '--check_every'),
                       ('--target_tau=0', '--target_tau'),
                       ('--env=pinball', 'pinball')):
        result = correspondence(bad)
        assert result.returncode == 2, (bad, result.stderr[-2000:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ') and names in last, (bad, result.stderr[-500:])
        assert 'Traceback' not in result.stderr
