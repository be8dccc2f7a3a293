"""The PSRL auxiliary objective: parameters + a batch of subsequences -> (per-example loss, metrics).

Notation follows the poster. For a sample starting at step k with observations o_k .. o_{k+T-1}:
  z^q_i = E^q(o_i), z^t_i = E^t(o_i)                                   spatial features [h, w, C]
  c^ext_{k+i+1->k+i} = C(z^t_{k+i+1}, z^q_{k+i}), i = 0..M;  c^int_{k->k+M} = C(z^q_k, z^q_{k+M})
  L_c   = L_r(c^int) + sum_i L_r(c^ext_i)                               (flows up-sampled to the image)
  CAT:  Z^{q,tr}_{k+j} = warp(conv1x1(z^q_{k+j-1}), c^ext_{k+j->k+j-1})  (flow at feature resolution)
  AAT:  Z^{q,pr}_{k+j} = G(Z^{q,pr}_{k+j-1}, a_{k+j-1}),  Z^{q,pr}_k = conv1x1(z^q_k)
  target Z^t_{k+j} = conv1x1^t(z^t_{k+j}),  y^t = psi^t(Z^t),  y^{q,*} = phi(psi(Z^{q,*}))
  L_sim = L_s(y^{q,tr}, y^t) + L_s(y^{q,pr}, y^t) + L1(Z^{q,tr}, Z^t) + L1(Z^{q,pr}, Z^t)
for j = 1..sim_steps (the poster uses a single next step; SPR's K-step rollout is sim_steps = K), averaged
over j. Every term is masked where the subsequence has left o_k's episode. The per-example loss is
lambda_sim * L_sim + lambda_c * L_c; the caller adds its RL loss and any importance weights.
"""
import dataclasses
from typing import Any, Dict, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from psrl_jax import losses, networks, transforms

Params = Any
# The objective's terms: with all three off there is no objective (PSRLConfig.enabled is false).
TERMS = ('correspondence', 'cat', 'aat')


@dataclasses.dataclass(frozen=True)
class PSRLConfig:
    """Static (hashable) configuration of the objective. Defaults are full PSRL on Atari.

    Switches: `correspondence` (L_c), `cat` (CAT branch), `aat` (AAT branch), `internal` (internal map
    in L_c), `l1` (the two L1 terms). The `spr` baseline is aat only with sim_steps = K; turning all
    three of correspondence/cat/aat off disables the objective (plain Rainbow / DrQ).
    """
    encoder: str = 'atari'                 # networks.ENCODERS key
    frame_channels: int = 1                # channels of one frame in the stack (1 gray, 3 RGB)
    num_actions: Optional[int] = None      # discrete actions (one-hot planes into G) ...
    action_dim: Optional[int] = None       # ... or a continuous action vector
    horizon: int = 5                       # M + 1 external maps
    sim_steps: int = 1                     # future steps with L_sim
    correspondence: bool = True
    cat: bool = True
    cat_flow_gradients: bool = True        # L_sim's gradient reaches C through CAT's warp (else stopped)
    aat: bool = True
    internal: bool = True
    l1: bool = True
    lambda_sim: float = 10.0
    lambda_c: float = 1.0
    smoothness_weight: float = 0.01
    max_displacement: int = 3
    displacement_penalty: float = 2.0      # C's initial prior towards small flows (cells^-2)
    correspondence_hidden: int = 64
    correspondence_resolution: int = 0     # side of the grid C matches on (0: the feature map's)
    correspondence_refinement: bool = True  # C's conv refinement of its soft-argmax flow
    correspondence_map: str = 'final'      # C matches on the encoder's 'final' map or its 'early' one
    transition_hidden: int = 64
    projection_dim: int = 512
    augmentation: Tuple[str, ...] = ('shift', 'intensity')
    augment_per: str = 'frame'             # augmentation draws per 'frame' stack, 'sequence' or 'mixed'
    query_gradients: str = 'all'           # z^q_{k+i} passing gradients to E^q: 'all' or 'first' (i = 0)

    def __post_init__(self):
        if self.encoder not in networks.ENCODERS:
            raise ValueError(f'encoder must be one of {sorted(networks.ENCODERS)}, got {self.encoder!r}')
        if (self.num_actions is None) == (self.action_dim is None):
            raise ValueError('set exactly one of num_actions (discrete) and action_dim (continuous)')
        if self.internal and not self.correspondence:
            raise ValueError('the internal map is a term of L_c: internal=True needs correspondence=True')
        if self.horizon < 1 or self.sim_steps < 1:
            raise ValueError('horizon and sim_steps must be >= 1')
        if self.augment_per not in transforms.AUGMENT_PER:
            raise ValueError(f'augment_per must be one of {transforms.AUGMENT_PER}, got '
                             f'{self.augment_per!r}')
        if self.correspondence_map not in ('final', 'early'):
            raise ValueError(f"correspondence_map must be 'final' or 'early', got "
                             f"{self.correspondence_map!r}")
        if self.early_map and self.encoder != 'atari':
            raise ValueError(f"correspondence_map='early' (the first convolution's map) is built "
                             f"for the atari encoder only, not {self.encoder!r}")
        if self.query_gradients not in ('all', 'first'):
            raise ValueError(f"query_gradients must be 'all' or 'first', got {self.query_gradients!r}")
        if self.cat and self.sim_steps > self.horizon:
            raise ValueError('CAT needs an external map per similarity step: sim_steps <= horizon')

    @property
    def enabled(self) -> bool:
        """Whether the objective has any term at all."""
        return any(getattr(self, term) for term in TERMS)

    @property
    def early_map(self) -> bool:
        """Whether C matches on the encoder's early map (correspondence_map='early')."""
        return self.correspondence_map == 'early'

    @property
    def uses_flows(self) -> bool:
        return self.correspondence or self.cat

    @property
    def num_query(self) -> int:
        """How many observations E^q encodes: o_k .. o_{k+M} when flows are needed, else o_k only."""
        return self.horizon if self.uses_flows else 1

    @property
    def sequence_length(self) -> int:
        """T: observations o_k .. o_{k+T-1} a sample must hold."""
        flows = self.horizon + 1 if self.uses_flows else 1
        similarity = self.sim_steps + 1 if (self.cat or self.aat) else 1
        return max(flows, similarity)


class PSRLBatch(NamedTuple):
    """observation [B, T, H, W, stack*c] (uint8 or float in [0, 1]); action [B, T-1] int or
    [B, T-1, A]; same_episode bool [B, T] (o_{k+j} is in o_k's episode)."""
    observation: jnp.ndarray
    action: jnp.ndarray
    same_episode: jnp.ndarray


class Modules(NamedTuple):
    encoder: Any
    correspondence: Any
    conv1x1: Any
    transition: Any
    projection: Any
    predictor: Any


def make_modules(config: PSRLConfig) -> Modules:
    """The flax modules of the objective (module definitions only; parameters live in a dict)."""
    return Modules(
        encoder=networks.ENCODERS[config.encoder](),
        correspondence=networks.CorrespondenceModule(
            config.max_displacement, config.correspondence_hidden,
            init_displacement_penalty=config.displacement_penalty,
            resolution=config.correspondence_resolution,
            refine=config.correspondence_refinement),
        conv1x1=networks.Conv1x1(),
        transition=networks.TransitionModel(config.num_actions, config.transition_hidden),
        projection=networks.Projection(config.projection_dim),
        predictor=networks.Projection(config.projection_dim),
    )


def init_params(key: chex.PRNGKey, config: PSRLConfig, observation_shape) -> Dict[str, Params]:
    """Parameters of the encoder and of every module the config uses.

    observation_shape: (H, W, stack*c). Returns {'encoder', ['correspondence'], ['conv1x1',
    'projection', 'predictor'], ['transition']}.
    """
    m = make_modules(config)
    keys = iter(jax.random.split(key, 6))
    obs = jnp.zeros((1,) + tuple(observation_shape), jnp.float32)
    params = {'encoder': m.encoder.init(next(keys), obs)}
    z = m.encoder.apply(params['encoder'], obs)
    if config.uses_flows:
        z_c = (m.encoder.apply(params['encoder'], obs, early=True)
               if config.early_map else z)
        params['correspondence'] = m.correspondence.init(next(keys), z_c, z_c)
    if config.cat or config.aat:
        params['conv1x1'] = m.conv1x1.init(next(keys), z)
        params['projection'] = m.projection.init(next(keys), z)
        y = m.projection.apply(params['projection'], z)
        params['predictor'] = m.predictor.init(next(keys), y)
    if config.aat:
        action = (jnp.zeros((1,), jnp.int32) if config.num_actions is not None
                  else jnp.zeros((1, config.action_dim), jnp.float32))
        params['transition'] = m.transition.init(next(keys), z, action)
    return params


def _merged(fn, *xs):
    """Applies fn to arrays [B, N, ...] with the leading two axes merged, and splits them again."""
    batch, n = xs[0].shape[:2]
    out = fn(*[x.reshape((batch * n,) + x.shape[2:]) for x in xs])
    return out.reshape((batch, n) + out.shape[1:])


def encode(params: Params, observations: jnp.ndarray, config: PSRLConfig,
           early: bool = False) -> jnp.ndarray:
    """Encoder features of a sequence: [B, N, H, W, stack*c] float -> [B, N, h, w, C] (the
    encoder's early map with early=True; see correspondence_map)."""
    encoder = make_modules(config).encoder
    extra = {'early': True} if early else {}
    return _merged(lambda o: encoder.apply(params['encoder'], o, **extra), observations)


def encode_query(params: Params, observations: jnp.ndarray, config: PSRLConfig,
                 early: bool = False) -> jnp.ndarray:
    """z^q of o_k .. o_{k+num_query-1}: float [B, >= num_query, H, W, stack*c] -> [B, num_query, h, w, C].

    With query_gradients = 'first' only z^q_k passes gradients to the encoder (the rest are encoded
    under stop-gradient: C and L_c still train on them, the encoder's backward pass is 1 frame, not
    M + 1); with 'all' every z^q_{k+i} does.
    """
    if config.query_gradients == 'all' or config.num_query == 1:
        return encode(params, observations[:, :config.num_query], config, early)
    rest = encode(jax.lax.stop_gradient(params), observations[:, 1:config.num_query], config, early)
    return jnp.concatenate([encode(params, observations[:, :1], config, early), rest], axis=1)


def correspondence_features(online_params: Params, target_params: Params,
                            observations: jnp.ndarray, config: PSRLConfig):
    """C's inputs when it matches on the encoder's early map: (z^q, z^t) of that map, shaped as
    psrl_objective's query and target; None when C uses the final map (query and target)."""
    if not (config.early_map and config.uses_flows):
        return None
    return (encode_query(online_params, observations, config, early=True),
            encode(target_params, observations[:, 1:], config, early=True))


def psrl_objective(online_params: Params, target_params: Params, query: jnp.ndarray,
                   target: jnp.ndarray, frames: jnp.ndarray, actions: jnp.ndarray,
                   same_episode: jnp.ndarray, config: PSRLConfig, c_features=None
                   ) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """The objective from encoder features, for agents that share z^q_k with their RL head.

    query: [B, config.num_query, h, w, C], z^q of o_k, o_{k+1}, ...
    target: [B, T-1, h, w, C], z^t of o_{k+1} .. o_{k+T-1} (treated as stop-gradient).
    c_features: C's inputs (query, target) on another map, [B, ., h', w', C'], from
    correspondence_features; None: C matches on query and target. CAT's warp gets C's flows
    resampled to h x w.
    frames: [B, T, H, W, c], the newest frame I_i of each observation the encoders saw, in [0, 1].
    actions: [B, T-1] (int) or [B, T-1, A]; same_episode: bool [B, T].
    Returns (loss [B], metrics: batch means of every active term, 'loss_sim' and 'loss_c', and
    with CAT or AAT 'z_scale', the mean |Z^t| of the target maps).
    """
    seq = config.sequence_length
    chex.assert_axis_dimension(query, 1, config.num_query)
    chex.assert_axis_dimension(target, 1, seq - 1)
    chex.assert_axis_dimension(frames, 1, seq)
    chex.assert_shape(same_episode, (query.shape[0], seq))
    m = make_modules(config)
    apply = lambda name, *x: getattr(m, name).apply(online_params[name], *x)
    apply_target = lambda name, *x: getattr(m, name).apply(target_params[name], *x)
    target = jax.lax.stop_gradient(target)
    mask = same_episode.astype(jnp.float32)
    batch = query.shape[0]
    metrics = {}
    loss_c = jnp.zeros(batch)
    loss_sim = jnp.zeros(batch)

    c_query, c_target = (query, target) if c_features is None else (
        c_features[0], jax.lax.stop_gradient(c_features[1]))
    if config.uses_flows:
        horizon = config.horizon
        external = _merged(lambda a, b: apply('correspondence', a, b),
                           c_target[:, :horizon], c_query[:, :horizon])   # [B, M+1, h', w', 2]
        metrics['flow_magnitude'] = jnp.mean(jnp.linalg.norm(external, axis=-1))
    if config.correspondence:
        height, width = frames.shape[2:4]
        to_image = lambda flow: transforms.upsample_flow(flow, height, width)
        internal = (to_image(apply('correspondence', c_query[:, 0], c_query[:, horizon - 1]))
                    if config.internal else None)
        terms = losses.correspondence_terms(
            frames[:, :horizon + 1], _merged(to_image, external), internal,
            same_episode[:, :horizon + 1], config.smoothness_weight)
        loss_c = terms['external'] + terms['internal']
        metrics['loss_c_external'] = terms['external'].mean()
        if config.internal:
            metrics['loss_c_internal'] = terms['internal'].mean()

    if config.cat or config.aat:
        steps = config.sim_steps
        project = lambda z: _merged(lambda x: apply('predictor', apply('projection', x)), z)
        z_t = _merged(lambda x: apply_target('conv1x1', x), target[:, :steps])    # Z^t_{k+1..k+S}
        y_t = _merged(lambda x: apply_target('projection', x), z_t)
        # The target maps' scale: the L1 terms against an online target can drive it without bound
        # (WORKSPACE_NOTES.md, "C against ground truth"), the cosines cannot see it.
        metrics['z_scale'] = jnp.mean(jnp.abs(z_t))
        z_tr = y_tr = z_pr = y_pr = None
        if config.cat:
            z_q = _merged(lambda x: apply('conv1x1', x), query[:, :steps])
            flows = external[:, :steps]
            if flows.shape[2:4] != query.shape[2:4]:   # C on the early map: its flows to h x w
                flows = _merged(lambda f: transforms.upsample_flow(f, *query.shape[2:4]), flows)
            if not config.cat_flow_gradients:
                flows = jax.lax.stop_gradient(flows)
            z_tr = _merged(transforms.warp, z_q, flows)
            y_tr = project(z_tr)
        if config.aat:
            z = apply('conv1x1', query[:, 0])
            rollout = []
            for j in range(steps):
                z = apply('transition', z, actions[:, j])
                rollout.append(z)
            z_pr = jnp.stack(rollout, axis=1)
            y_pr = project(z_pr)
        merge = lambda x: None if x is None else x.reshape((-1,) + x.shape[2:])
        terms = losses.paired_similarity_terms(
            merge(y_tr), merge(y_pr), merge(y_t),
            *(map(merge, (z_tr, z_pr, z_t)) if config.l1 else (None, None, None)))
        step_mask = mask[:, 1:steps + 1]
        for name, value in terms.items():
            value = value.reshape(batch, steps) * step_mask
            metrics[name] = value.mean()
            loss_sim = loss_sim + value.mean(axis=1)

    metrics['loss_sim'] = loss_sim.mean()
    metrics['loss_c'] = loss_c.mean()
    return config.lambda_sim * loss_sim + config.lambda_c * loss_c, metrics


def newest_frames(observations: jnp.ndarray, config: PSRLConfig) -> jnp.ndarray:
    """I_i: the newest frame of each stacked observation, [..., H, W, stack*c] -> [..., H, W, c]."""
    return observations[..., -config.frame_channels:]


def psrl_loss(online_params: Params, target_params: Params, batch: PSRLBatch, key: chex.PRNGKey,
              config: PSRLConfig) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """PSRL's auxiliary loss of a batch of subsequences.

    online_params / target_params: dicts from init_params (the target is E^t, conv1x1^t, psi^t: an EMA
    of the online parameters, or the online parameters themselves when tau = 0 as in SPR).
    batch: PSRLBatch with T = config.sequence_length observations. key: the augmentation draw
    (config.augmentation, drawn per frame stack, per subsequence or half each: config.augment_per).
    Returns (loss [B], metrics) as psrl_objective.
    """
    chex.assert_axis_dimension(batch.observation, 1, config.sequence_length)
    observations = transforms.augment(key, batch.observation, config.augmentation,
                                      config.augment_per)
    query = encode_query(online_params, observations, config)
    target = encode(target_params, observations[:, 1:], config)
    return psrl_objective(online_params, target_params, query, target,
                          newest_frames(observations, config), batch.action, batch.same_episode, config,
                          correspondence_features(online_params, target_params, observations, config))
