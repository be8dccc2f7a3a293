"""The PSRL objective: where gradients go, what each switch removes, masking, presets, jit."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import psrl

BATCH = 4
# Small horizon and window keep compilation short on CPU; the structure is the same as the defaults.
SMALL = dict(horizon=3, max_displacement=2, projection_dim=32)
SPR = dict(correspondence=False, cat=False, internal=False, l1=False, sim_steps=3)
ABLATIONS = {
    'no_cat': dict(cat=False),
    'no_aat': dict(aat=False),
    'no_internal': dict(internal=False),
    'no_l1': dict(l1=False),
}


psrl_loss = jax.jit(psrl.psrl_loss, static_argnums=4)


def make(config_kwargs, seed=0, continuous=False, same_episode=None):
    action = dict(action_dim=2) if continuous else dict(num_actions=6)
    obs_shape = (84, 84, 9) if continuous else (84, 84, 4)
    config = psrl.PSRLConfig(encoder='dmc' if continuous else 'atari',
                             frame_channels=3 if continuous else 1,
                             **action, **{**SMALL, **config_kwargs})
    params = psrl.init_params(jax.random.PRNGKey(seed), config, obs_shape)
    rng = np.random.default_rng(seed)
    t = config.sequence_length
    observation = rng.integers(0, 256, (BATCH, t) + obs_shape, dtype=np.uint8)
    actions = (rng.uniform(-1, 1, (BATCH, t - 1, 2)).astype(np.float32) if continuous
               else rng.integers(0, 6, (BATCH, t - 1)))
    if same_episode is None:
        same_episode = np.ones((BATCH, t), bool)
    batch = psrl.PSRLBatch(jnp.asarray(observation), jnp.asarray(actions), jnp.asarray(same_episode))
    return config, params, batch


def grads(config, params, batch, key=jax.random.PRNGKey(1)):
    """Gradients wrt online and target parameters (passed separately) of the mean loss."""
    target = jax.tree.map(jnp.array, params)  # a distinct copy: same values, separate leaves
    fn = lambda online, tgt: psrl.psrl_loss(online, tgt, batch, key, config)[0].mean()
    return jax.jit(jax.grad(fn, argnums=(0, 1)))(params, target)


def norms(tree):
    return {name: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(sub)))
            for name, sub in tree.items()}


@pytest.mark.parametrize('continuous', [False, True])
def test_gradients_reach_every_online_module_and_never_the_target(continuous):
    config, params, batch = make({}, continuous=continuous)
    online, target = grads(config, params, batch)
    assert set(online) == {'encoder', 'correspondence', 'conv1x1', 'transition', 'projection',
                           'predictor'}
    for name, norm in norms(online).items():
        assert np.isfinite(norm) and norm > 0, name
    assert all(norm == 0.0 for norm in norms(target).values())


def test_spr_preset_has_no_correspondence_and_trains_aat_only():
    config, params, batch = make(SPR)
    assert 'correspondence' not in params
    _, metrics = psrl_loss(params, params, batch, jax.random.PRNGKey(1), config)
    assert set(metrics) == {'cos_pr', 'loss_sim', 'loss_c'}
    assert float(metrics['loss_c']) == 0.0
    online, _ = grads(config, params, batch)
    assert norms(online)['transition'] > 0 and norms(online)['encoder'] > 0


def term_names(config_kwargs):
    config, params, batch = make(config_kwargs)
    return set(psrl_loss(params, params, batch, jax.random.PRNGKey(1), config)[1])


def test_each_ablation_removes_exactly_its_terms():
    full = term_names({})
    assert full == {'flow_magnitude', 'loss_c_external', 'loss_c_internal', 'cos_tr', 'cos_pr',
                    'l1_tr', 'l1_pr', 'loss_sim', 'loss_c'}
    removed = {'no_cat': {'cos_tr', 'l1_tr'}, 'no_aat': {'cos_pr', 'l1_pr'},
               'no_internal': {'loss_c_internal'}, 'no_l1': {'l1_tr', 'l1_pr'}}
    for name, kwargs in ABLATIONS.items():
        assert full - term_names(kwargs) == removed[name], name
        assert term_names(kwargs) <= full


def test_loss_is_weighted_sum_of_its_terms():
    config, params, batch = make({})
    loss, metrics = psrl_loss(params, params, batch, jax.random.PRNGKey(1), config)
    sim = sum(float(metrics[k]) for k in ('cos_tr', 'cos_pr', 'l1_tr', 'l1_pr'))
    c = float(metrics['loss_c_external'] + metrics['loss_c_internal'])
    np.testing.assert_allclose(float(metrics['loss_sim']), sim, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(metrics['loss_c']), c, rtol=1e-5)
    np.testing.assert_allclose(float(loss.mean()), config.lambda_sim * sim + config.lambda_c * c,
                               rtol=1e-5, atol=1e-6)
    assert loss.shape == (BATCH,) and loss.dtype == jnp.float32


def test_ablation_gradients_leave_unused_modules_out():
    config, params, batch = make(ABLATIONS['no_aat'])
    assert 'transition' not in params
    online, _ = grads(config, params, batch)
    assert norms(online)['correspondence'] > 0


def test_masking_beyond_episode_end():
    """Example 0 leaves its episode after o_k: every term of it must vanish and carry no gradient."""
    same = np.ones((BATCH, 4), bool)
    same[0, 1:] = False
    config, params, batch = make({}, same_episode=same)
    key = jax.random.PRNGKey(1)
    loss, _ = psrl_loss(params, params, batch, key, config)
    assert float(loss[0]) == 0.0 and np.all(np.asarray(loss[1:]) != 0.0)
    grad0 = jax.jit(jax.grad(lambda p: psrl.psrl_loss(p, params, batch, key, config)[0][0]))(params)
    assert all(float(jnp.abs(x).sum()) == 0.0 for x in jax.tree.leaves(grad0))


def test_partial_mask_keeps_early_steps():
    """Episode ends after o_{k+1}: the first external map and the step-1 similarity remain."""
    same = np.ones((BATCH, 4), bool)
    same[:, 2:] = False
    config, params, batch = make({}, same_episode=same)
    key = jax.random.PRNGKey(1)
    loss, metrics = psrl_loss(params, params, batch, key, config)
    assert float(metrics['loss_c_internal']) == 0.0  # c^int_{k->k+M} crosses the end
    assert float(metrics['loss_c_external']) > 0.0 and float(metrics['cos_tr']) != 0.0
    full = make({})
    _, full_metrics = psrl_loss(full[1], full[1], full[2], key, full[0])
    assert float(metrics['loss_c_external']) < float(full_metrics['loss_c_external'])


def test_finite_and_vmap_agrees_with_single_calls():
    config, params, batch = make({})
    key = jax.random.PRNGKey(3)
    single, _ = psrl_loss(params, params, batch, key, config)
    assert np.all(np.isfinite(np.asarray(single)))
    other = batch._replace(observation=batch.observation[::-1])
    stacked = jax.tree.map(lambda *x: jnp.stack(x), batch, other)
    fn = jax.jit(jax.vmap(lambda b: psrl.psrl_loss(params, params, b, key, config)[0]))
    vmapped = np.asarray(fn(stacked))
    np.testing.assert_allclose(vmapped[0], np.asarray(single), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vmapped[1], np.asarray(psrl_loss(params, params, other, key, config)[0]),
                               rtol=1e-4, atol=1e-5)


def test_augmentation_key_changes_loss():
    config, params, batch = make({})
    a, _ = psrl_loss(params, params, batch, jax.random.PRNGKey(1), config)
    b, _ = psrl_loss(params, params, batch, jax.random.PRNGKey(2), config)
    assert not np.allclose(np.asarray(a), np.asarray(b))
    no_aug = dataclasses.replace(config, augmentation=())
    c, _ = psrl_loss(params, params, batch, jax.random.PRNGKey(1), no_aug)
    d, _ = psrl_loss(params, params, batch, jax.random.PRNGKey(2), no_aug)
    np.testing.assert_array_equal(np.asarray(c), np.asarray(d))


@pytest.mark.parametrize('kwargs', [
    dict(internal=True, correspondence=False, cat=False),
    dict(sim_steps=6),
    dict(horizon=0),
    dict(encoder='resnet'),
])
def test_invalid_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        psrl.PSRLConfig(num_actions=4, **kwargs)
    with pytest.raises(ValueError):
        psrl.PSRLConfig()  # neither discrete nor continuous actions


def test_sequence_lengths():
    assert psrl.PSRLConfig(num_actions=4).sequence_length == 6
    assert psrl.PSRLConfig(num_actions=4, **SPR).sequence_length == 4
    assert psrl.PSRLConfig(num_actions=4, horizon=3).sequence_length == 4
    none = psrl.PSRLConfig(num_actions=4, correspondence=False, cat=False, aat=False,
                           internal=False)
    assert not none.enabled and none.sequence_length == 1
