"""Data-efficient Rainbow (dueling, noisy, C51, double-Q, n-step, prioritized) with the PSRL loss.

SPR's Atari 100k settings (mila-iqia/spr, BBF's SPR config). One jitted `update` fuses the
augmentation, the C51 loss, the PSRL (or SPR) auxiliary loss, the Adam step and the target update.
Functions act on one agent; the training loop vmaps them over seeds.
"""
import dataclasses
from typing import Any, Dict, Optional, Tuple

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from psrl_jax import networks, psrl, transforms
from psrl_jax.agents.microbatch import microbatched_grad

_PRIORITY_FLOOR = 1e-6   # SPR's (rlpyt's) EPS: priorities are clamped to [EPS, 1 / EPS]
RL_LOSS = 'C51'          # the RL term of `gradients` (experiments.gradient_shares names it)


@dataclasses.dataclass(frozen=True)
class RainbowConfig:
    """Static (hashable) agent settings; defaults are SPR's."""
    psrl: psrl.PSRLConfig
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    hidden: int = 256
    noisy_std: float = 0.5
    learning_rate: float = 1e-4
    adam_eps: float = 1.5e-4
    max_grad_norm: float = 10.0
    target_update_period: int = 1          # updates between target refreshes
    target_update_tau: float = 1.0         # 1: copy; with period 1 the target *is* the online net
    epsilon_start: float = 1.0
    epsilon_end: float = 0.0
    epsilon_decay_steps: int = 2000        # agent steps; SPR decays over the warm-up
    eval_epsilon: float = 0.0
    microbatches: int = 1                  # chunks the gradient is accumulated over (same gradient)

    @property
    def num_actions(self) -> int:
        return self.psrl.num_actions

    @property
    def target_is_online(self) -> bool:
        """SPR's setting: the target is the online network under stop-gradient (no copy kept)."""
        return self.target_update_period == 1 and self.target_update_tau == 1.0


@flax.struct.dataclass
class RainbowState:
    """params: {'encoder', 'q_head', + PSRL modules}; target_params: a copy of them, or None when
    the target is the online network; opt_state: Adam's; updates: int32 [] updates done."""
    params: Any
    target_params: Optional[Any]
    opt_state: Any
    updates: jnp.ndarray


def support(config: RainbowConfig) -> jnp.ndarray:
    """The C51 atoms z_i, float32 [num_atoms]."""
    return jnp.linspace(config.v_min, config.v_max, config.num_atoms)


def _q_head(config: RainbowConfig) -> networks.RainbowHead:
    return networks.RainbowHead(config.num_actions, config.num_atoms, config.hidden, config.noisy_std)


def _optimizer(config: RainbowConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(config.learning_rate, eps=config.adam_eps))


def init(key: chex.PRNGKey, config: RainbowConfig, observation_shape) -> RainbowState:
    """A fresh agent for observations uint8 [H, W, stack] of observation_shape."""
    key_psrl, key_head = jax.random.split(key)
    params = psrl.init_params(key_psrl, config.psrl, observation_shape)
    encoder = psrl.make_modules(config.psrl).encoder
    z = encoder.apply(params['encoder'], jnp.zeros((1,) + tuple(observation_shape)))
    params['q_head'] = _q_head(config).init({'params': key_head, 'noise': key_head}, z)
    return RainbowState(
        params=params,
        target_params=None if config.target_is_online else jax.tree.map(jnp.copy, params),
        opt_state=_optimizer(config).init(params),
        updates=jnp.zeros((), jnp.int32))


def _logits(params, observations, config: RainbowConfig, noise_key: Optional[chex.PRNGKey]):
    """Atom logits [B, A, atoms] of float observations [B, H, W, stack]; noise_key None: no noise."""
    z = psrl.make_modules(config.psrl).encoder.apply(params['encoder'], observations)
    return _head_logits(params, z, config, noise_key)


def _head_logits(params, z, config: RainbowConfig, noise_key):
    if noise_key is None:
        return _q_head(config).apply(params['q_head'], z, noisy=False)
    return _q_head(config).apply(params['q_head'], z, noisy=True, rngs={'noise': noise_key})


def q_values(params, observations: jnp.ndarray, config: RainbowConfig,
             noise_key: Optional[chex.PRNGKey] = None) -> jnp.ndarray:
    """Expected returns [B, A] of uint8 observations [B, H, W, stack]."""
    logits = _logits(params, observations.astype(jnp.float32) / 255.0, config, noise_key)
    return jnp.sum(jax.nn.softmax(logits) * support(config), axis=-1)


def epsilon(config: RainbowConfig, step: jnp.ndarray) -> jnp.ndarray:
    """Linear decay from epsilon_start to epsilon_end over epsilon_decay_steps agent steps."""
    fraction = jnp.clip(step / max(config.epsilon_decay_steps, 1), 0.0, 1.0)
    return config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)


def _epsilon_greedy(key, q, eps):
    key_explore, key_action = jax.random.split(key)
    random_action = jax.random.randint(key_action, q.shape[:1], 0, q.shape[-1])
    explore = jax.random.uniform(key_explore, q.shape[:1]) < eps
    return jnp.where(explore, random_action, jnp.argmax(q, axis=-1)).astype(jnp.int32)


def act(state: RainbowState, observations: jnp.ndarray, key: chex.PRNGKey, step: jnp.ndarray,
        config: RainbowConfig) -> jnp.ndarray:
    """Training policy: noisy nets plus the epsilon schedule.  uint8 [B, H, W, stack] -> int32 [B]."""
    key_noise, key_greedy = jax.random.split(key)
    q = q_values(state.params, observations, config, key_noise)
    return _epsilon_greedy(key_greedy, q, epsilon(config, step))


def evaluate_act(state: RainbowState, observations: jnp.ndarray, key: chex.PRNGKey,
                 config: RainbowConfig) -> jnp.ndarray:
    """Evaluation policy: greedy on the noise-free network (eval_epsilon, default 0)."""
    q = q_values(state.params, observations, config)
    return _epsilon_greedy(key, q, config.eval_epsilon)


def project_distribution(probabilities: jnp.ndarray, returns: jnp.ndarray, discounts: jnp.ndarray,
                         config: RainbowConfig) -> jnp.ndarray:
    """C51 projection of r + discount * z onto the support: [B, atoms] -> [B, atoms]."""
    z = support(config)
    delta = (config.v_max - config.v_min) / (config.num_atoms - 1)
    target_z = jnp.clip(returns[:, None] + discounts[:, None] * z, config.v_min, config.v_max)
    # Each target atom spreads its mass over the two nearest support atoms.
    weights = jnp.clip(1.0 - jnp.abs(target_z[:, :, None] - z[None, None, :]) / delta, 0.0, 1.0)
    return jnp.sum(probabilities[:, :, None] * weights, axis=1)


def priorities(target_distribution: jnp.ndarray, log_probabilities: jnp.ndarray) -> jnp.ndarray:
    """SPR's replay priorities: KL(target || predicted) of the taken action's C51 distribution.

    target_distribution, log_probabilities: [B, atoms]. As mila-iqia/spr (src/algos.py,
    dist_rl_loss) and rlpyt's CategoricalDQN: the target is clamped to [1e-6, 1] and the KL to
    [1e-6, 1e6], so a learned transition keeps a small positive priority. Returns [B].
    """
    target = jnp.clip(target_distribution, _PRIORITY_FLOOR, 1.0)
    divergence = jnp.sum(target * (jnp.log(target) - log_probabilities), axis=-1)
    return jnp.clip(divergence, _PRIORITY_FLOOR, 1.0 / _PRIORITY_FLOOR)


def gradients(state: RainbowState, batch, weights: jnp.ndarray, key: chex.PRNGKey,
              config: RainbowConfig) -> Tuple[Any, jnp.ndarray, Dict[str, jnp.ndarray]]:
    """The learner's gradient on a replay batch (replay.Batch with T >= psrl.sequence_length) of
    sum_b weights_b (C51 cross-entropy + lambda_sim L_sim + lambda_c L_c) / B, weights [B] the
    importance weights. Returns (grads, new priorities [B], metrics): `update` steps along it."""
    pc = config.psrl
    seq = pc.sequence_length
    key_aug, key_next_aug, key_online, key_next, key_target = jax.random.split(key, 5)
    observations = transforms.augment(key_aug, batch.observation[:, :seq], pc.augmentation,
                                      pc.augment_per)
    next_observations = transforms.augment(key_next_aug, batch.next_observation, pc.augmentation)
    actions = batch.action[:, 0]
    target_params = (jax.lax.stop_gradient(state.params) if config.target_is_online
                     else state.target_params)

    # The C51 target from the n-step bootstrap observation (double-Q: online argmax).
    next_q = jnp.sum(jax.nn.softmax(_logits(jax.lax.stop_gradient(state.params), next_observations,
                                            config, key_next)) * support(config), axis=-1)
    next_logits = _logits(target_params, next_observations, config, key_target)
    next_probabilities = jax.nn.softmax(next_logits[jnp.arange(actions.shape[0]),
                                                    jnp.argmax(next_q, axis=-1)])
    target_distribution = jax.lax.stop_gradient(
        project_distribution(next_probabilities, batch.returns, batch.discount, config))

    batch_size = weights.shape[0]

    def loss_fn(params, data):
        observations, target_distribution, weights, action_sequence, same_episode = data
        actions = action_sequence[:, 0]
        query = psrl.encode_query(params, observations, pc)
        logits = _head_logits(params, query[:, 0], config, key_online)
        log_probabilities = jax.nn.log_softmax(logits[jnp.arange(actions.shape[0]), actions])
        cross_entropy = -jnp.sum(target_distribution * log_probabilities, axis=-1)
        metrics = {'loss_rl': cross_entropy.mean(),
                   'q_mean': jnp.mean(jnp.sum(jnp.exp(log_probabilities) * support(config), -1))}
        auxiliary = jnp.zeros_like(cross_entropy)
        if pc.enabled:
            # Target features of o_{k+1} .. o_{k+T-1}; when the target is the online network, the
            # query's own features of o_{k+1} .. o_{k+num_query-1} are reused (same values).
            if config.target_is_online:
                rest = psrl.encode(target_params, observations[:, pc.num_query:], pc)
                target = jnp.concatenate([jax.lax.stop_gradient(query[:, 1:]), rest], axis=1)
            else:
                target = psrl.encode(target_params, observations[:, 1:], pc)
            auxiliary, aux_metrics = psrl.psrl_objective(
                params, target_params, query, target, psrl.newest_frames(observations, pc),
                action_sequence[:, :seq - 1], same_episode[:, :seq], pc,
                psrl.correspondence_features(params, target_params, observations, pc))
            metrics.update(aux_metrics)
        else:
            metrics.update(loss_sim=jnp.zeros(()), loss_c=jnp.zeros(()))
        loss = jnp.sum(weights * (cross_entropy + auxiliary)) / batch_size
        return loss, (priorities(target_distribution, log_probabilities), metrics)

    data = (observations, target_distribution, weights, batch.action, batch.same_episode)
    return microbatched_grad(loss_fn, state.params, data, config.microbatches)


def update(state: RainbowState, batch, weights: jnp.ndarray, key: chex.PRNGKey,
           config: RainbowConfig) -> Tuple[RainbowState, jnp.ndarray, Dict[str, jnp.ndarray]]:
    """One learner step on a replay batch (replay.Batch with T >= psrl.sequence_length).

    weights: importance weights [B]. Returns the new state, the new priorities [B] (`priorities`:
    the KL divergence of the C51 target from the prediction, as SPR) and the metrics (loss_rl,
    loss_sim, loss_c, PSRL terms, q_mean, grad_norm).
    """
    grads, new_priorities, metrics = gradients(state, batch, weights, key, config)
    updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    count = state.updates + 1
    target = state.target_params
    if not config.target_is_online:
        refresh = (count % config.target_update_period) == 0
        target = jax.tree.map(
            lambda t, p: jnp.where(refresh, (1 - config.target_update_tau) * t
                                   + config.target_update_tau * p, t), target, params)
    metrics['grad_norm'] = optax.global_norm(grads)
    new_state = RainbowState(params=params, target_params=target, opt_state=opt_state,
                             updates=count)
    return new_state, jax.lax.stop_gradient(new_priorities), metrics
