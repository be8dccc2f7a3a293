"""The PSRL objective: where gradients go, what each switch removes, masking, presets, jit, and its
values and gradients against the float64 numpy reference (tests/numpy_reference.py)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import psrl, transforms

import numpy_reference

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
    assert set(metrics) == {'cos_pr', 'loss_sim', 'loss_c', 'z_scale'}
    assert float(metrics['loss_c']) == 0.0
    online, _ = grads(config, params, batch)
    assert norms(online)['transition'] > 0 and norms(online)['encoder'] > 0


def term_names(config_kwargs):
    config, params, batch = make(config_kwargs)
    return set(psrl_loss(params, params, batch, jax.random.PRNGKey(1), config)[1])


def test_each_ablation_removes_exactly_its_terms():
    full = term_names({})
    assert full == {'flow_magnitude', 'loss_c_external', 'loss_c_internal', 'cos_tr', 'cos_pr',
                    'l1_tr', 'l1_pr', 'loss_sim', 'loss_c', 'z_scale'}
    removed = {'no_cat': {'cos_tr', 'l1_tr'}, 'no_aat': {'cos_pr', 'l1_pr'},
               'no_internal': {'loss_c_internal'}, 'no_l1': {'l1_tr', 'l1_pr'}}
    for name, kwargs in ABLATIONS.items():
        assert full - term_names(kwargs) == removed[name], name
        assert term_names(kwargs) <= full


def test_z_scale_is_the_mean_magnitude_of_the_target_maps():
    config, params, batch = make({})
    key = jax.random.PRNGKey(1)
    z_scale = lambda online, target: float(psrl_loss(online, target, batch, key, config)[1]['z_scale'])
    scaled = lambda c: {**params, 'conv1x1': jax.tree.map(lambda x: c * x, params['conv1x1'])}
    doubled = scaled(2)
    base = z_scale(params, params)
    assert base > 0
    # Z^t = conv1x1^t(z^t) is linear in conv1x1^t's kernel and bias, so a magnitude doubles with
    # them and does not change sign with them; the online maps do not count.
    np.testing.assert_allclose(z_scale(params, doubled), 2 * base, rtol=1e-5)
    np.testing.assert_allclose(z_scale(params, scaled(-1)), base, rtol=1e-5)
    assert z_scale(doubled, params) == base


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


def test_cat_flow_gradients_switch_stops_only_cats_gradient_into_c():
    # CAT alone (no L_c): C's only gradient is L_sim's through the warp, which the switch stops.
    cat_only = dict(correspondence=False, internal=False, aat=False)
    config, params, batch = make(cat_only)
    online, _ = grads(config, params, batch)
    assert norms(online)['correspondence'] > 0
    config, params, batch = make({**cat_only, 'cat_flow_gradients': False})
    stopped, _ = grads(config, params, batch)
    assert norms(stopped)['correspondence'] == 0.0
    for name in ('encoder', 'conv1x1', 'projection', 'predictor'):   # the rest still learns
        assert norms(stopped)[name] > 0, name
    # with L_c on, C learns from L_c alone: the gradient equals L_c's (lambda_sim = 0)
    config, params, batch = make({'cat_flow_gradients': False})
    stopped, _ = grads(config, params, batch)
    config, params, batch = make({'lambda_sim': 0.0})
    lc_only, _ = grads(config, params, batch)
    for a, b in zip(jax.tree.leaves(stopped['correspondence']),
                    jax.tree.leaves(lc_only['correspondence'])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('per', ['frame', 'sequence', 'mixed'])
def test_loss_augments_its_subsequences_as_augment_per_says(per):
    config, params, batch = make({'augment_per': per})
    key = jax.random.PRNGKey(3)
    loss, _ = psrl_loss(params, params, batch, key, config)
    augmented = transforms.augment(key, batch.observation, config.augmentation, per)
    plain = dataclasses.replace(config, augmentation=())   # float frames pass through unchanged
    expected, _ = psrl_loss(params, params, batch._replace(observation=augmented), key, plain)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)   # float32 sums in another order
    other = transforms.augment(key, batch.observation, config.augmentation,
                               {'frame': 'sequence', 'sequence': 'frame', 'mixed': 'frame'}[per])
    assert not np.allclose(psrl_loss(params, params, batch._replace(observation=other), key,
                                     plain)[0], loss, rtol=1e-4)


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


def encoder_layer_norms(online):
    return [norms(online['encoder']['params'][f'Conv_{i}'])['kernel'] for i in range(3)]


def test_correspondence_on_the_early_map_trains_only_the_first_convolution_through_l_c():
    # L_c alone: C matches on the first convolution's 20x20 map, so L_c's gradient reaches that
    # convolution and no later one; on the final map it reaches all three.
    lc_only = dict(cat=False, aat=False, l1=False)
    config, params, batch = make({**lc_only, 'correspondence_map': 'early'})
    online, target = grads(config, params, batch)
    first, second, third = encoder_layer_norms(online)
    assert first > 0 and second == 0.0 and third == 0.0
    assert norms(online)['correspondence'] > 0 and all(v == 0 for v in norms(target).values())
    config, params, batch = make(lc_only)
    assert all(v > 0 for v in encoder_layer_norms(grads(config, params, batch)[0]))


def test_early_map_flows_reach_cat_resampled_to_the_final_map():
    # CAT alone: C's only gradient is L_sim's through CAT's warp of the 7x7 map with C's 20x20
    # flows resampled; the objective with C's inputs given as the final maps is the default one.
    cat_only = dict(correspondence=False, internal=False, aat=False)
    config, params, batch = make({**cat_only, 'correspondence_map': 'early'})
    online, _ = grads(config, params, batch)
    assert norms(online)['correspondence'] > 0 and encoder_layer_norms(online)[0] > 0
    config, params, batch = make(cat_only)
    key = jax.random.PRNGKey(3)
    observations = transforms.augment(key, batch.observation, config.augmentation)
    query = psrl.encode_query(params, observations, config)
    target = psrl.encode(params, observations[:, 1:], config)
    args = (params, params, query, target, psrl.newest_frames(observations, config),
            batch.action, batch.same_episode, config)
    assert psrl.correspondence_features(params, params, observations, config) is None
    np.testing.assert_allclose(psrl.psrl_objective(*args)[0],
                               psrl.psrl_objective(*args, (query, target))[0], rtol=1e-6)


@pytest.mark.parametrize('kwargs', [
    dict(internal=True, correspondence=False, cat=False),
    dict(sim_steps=6),
    dict(horizon=0),
    dict(encoder='resnet'),
    dict(augment_per='batch'),
    dict(correspondence_map='middle'),
    dict(correspondence_map='early', encoder='minatar'),
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


# ------------------------------------------------------------------------------------------------
# The whole objective against tests/numpy_reference.psrl_objective (float64, written from the
# poster's definitions): values of every term and finite-difference gradients in the features.

FEATURES = (3, 5, 5, 6)            # B, h, w, C
FRAMES = (10, 10, 1)               # H, W, c: one feature cell is 2 x 2 pixels
# Example 0 stays in its episode; 1 leaves it after o_{k+2}; 2 after o_{k+1}.
SAME_EPISODE = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], bool)
REFERENCE_CASES = {
    'discrete, S = 1': dict(num_actions=3),
    'continuous, S = 2': dict(action_dim=2, sim_steps=2),
    'discrete, S = 3, no internal map': dict(num_actions=3, sim_steps=3, internal=False),
}


def randomized(params, rng):
    """Every leaf redrawn (kernels ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2)): no zero-initialised
    layer hides, and C's beta = 3, alpha = 0.5 differ from their initial values."""
    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if 'log_inverse_temperature' in name:
            return jnp.asarray(np.log(3.0), jnp.float32)
        if 'log_displacement_penalty' in name:
            return jnp.asarray(np.log(0.5), jnp.float32)
        scale = 0.1 if leaf.ndim == 1 else np.prod(leaf.shape[:-1]) ** -0.5
        return jnp.asarray(rng.normal(0.0, scale, leaf.shape), jnp.float32)
    return jax.tree_util.tree_map_with_path(draw, params)


def reference_problem(case, seed=0):
    """(config, online, target, inputs) of a tiny objective with features given as inputs."""
    config = psrl.PSRLConfig(horizon=3, max_displacement=2, correspondence_hidden=4,
                             transition_hidden=4, projection_dim=8, lambda_sim=2.0, lambda_c=3.0,
                             smoothness_weight=0.1, **REFERENCE_CASES[case])
    rng = np.random.default_rng(seed)
    m = psrl.make_modules(config)
    z = jnp.zeros((1,) + FEATURES[1:])
    action = (jnp.zeros((1,), jnp.int32) if config.num_actions else jnp.zeros((1, 2)))
    key = jax.random.PRNGKey(seed)
    init = {'correspondence': m.correspondence.init(key, z, z), 'conv1x1': m.conv1x1.init(key, z),
            'projection': m.projection.init(key, z), 'transition': m.transition.init(key, z, action)}
    init['predictor'] = m.predictor.init(key, jnp.zeros((1, config.projection_dim)))
    online, target = randomized(init, rng), randomized(init, rng)
    batch, t = FEATURES[0], config.sequence_length
    actions = (rng.integers(0, 3, (batch, t - 1)) if config.num_actions
               else rng.uniform(-1, 1, (batch, t - 1, 2)))
    inputs = dict(query=rng.uniform(0, 1, (batch, config.num_query) + FEATURES[1:]),
                  target=rng.uniform(0, 1, (batch, t - 1) + FEATURES[1:]),
                  frames=rng.uniform(0, 1, (batch, t) + FRAMES), actions=actions,
                  same_episode=SAME_EPISODE[:, :t])
    return config, online, target, inputs


def jax_objective(config, online, target, inputs):
    """psrl_objective jitted as a function of (query, target features) -> (loss [B], metrics)."""
    fn = lambda query, target_features: psrl.psrl_objective(
        online, target, query, target_features, jnp.asarray(inputs['frames'], jnp.float32),
        jnp.asarray(inputs['actions']), jnp.asarray(inputs['same_episode']), config)
    return jax.jit(fn)


def numpy_objective(config, online, target, inputs, query):
    as_numpy = lambda tree: jax.tree.map(np.asarray, tree)
    return numpy_reference.psrl_objective(
        as_numpy(online), as_numpy(target), query, inputs['target'], inputs['frames'],
        inputs['actions'], inputs['same_episode'], config)


@pytest.mark.parametrize('case', list(REFERENCE_CASES))
def test_objective_matches_the_numpy_reference(case):
    config, online, target, inputs = reference_problem(case)
    loss, metrics = jax_objective(config, online, target, inputs)(
        jnp.asarray(inputs['query'], jnp.float32), jnp.asarray(inputs['target'], jnp.float32))
    expected, terms = numpy_objective(config, online, target, inputs, inputs['query'])
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=2e-4, atol=1e-5)
    names = {'external': 'loss_c_external', 'internal': 'loss_c_internal'}
    if not config.internal:
        assert 'loss_c_internal' not in metrics and not terms.pop('internal').any()
    for name, value in terms.items():
        np.testing.assert_allclose(float(metrics[names.get(name, name)]), value.mean(), rtol=2e-4,
                                   atol=1e-5, err_msg=name)
    # The masks matter here: example 2 keeps only step 1 and the first external map.
    assert terms['external'][2] < terms['external'][0] and np.all(expected != 0)


@pytest.mark.parametrize('case', list(REFERENCE_CASES))
def test_objective_gradients_match_finite_differences_of_the_reference(case):
    """d(u . loss)/d query along one random direction per map z^q_{k+i} and one over all of them
    (central differences of the float64 reference, step 1e-6); target features get no gradient."""
    config, online, target, inputs = reference_problem(case, seed=1)
    rng = np.random.default_rng(2)
    u = rng.uniform(0.5, 1.5, FEATURES[0])
    objective = jax_objective(config, online, target, inputs)
    scalar = lambda q, t: jnp.sum(jnp.asarray(u, jnp.float32) * objective(q, t)[0])
    grad_query, grad_target = jax.jit(jax.grad(scalar, argnums=(0, 1)))(
        jnp.asarray(inputs['query'], jnp.float32), jnp.asarray(inputs['target'], jnp.float32))
    assert float(jnp.abs(grad_target).max()) == 0.0
    query = inputs['query']
    directions = []
    for i in range(config.num_query):
        v = np.zeros_like(query)
        v[:, i] = rng.normal(size=v[:, i].shape)
        directions.append(v)
    directions.append(rng.normal(size=query.shape))
    h = 1e-6
    f = lambda q: u @ numpy_objective(config, online, target, inputs, q)[0]
    for i, v in enumerate(directions):
        numeric = (f(query + h * v) - f(query - h * v)) / (2 * h)
        analytic = float(np.sum(np.asarray(grad_query, np.float64) * v))
        np.testing.assert_allclose(analytic, numeric, rtol=2e-3, atol=2e-4,
                                   err_msg=f'direction {i}')
