"""DrQ-style SAC from pixels with the PSRL loss on the encoder (continuous actions).

The critic owns the convolutional encoder; the actor reads its features with stop-gradient and has
its own trunk. Learned temperature, target critic + encoder as an EMA, actor and target updates
every 2 steps, random-shift augmentation (DrQ, Kostrikov et al.; the seed table's DrQ column).
One jitted `update` fuses augmentation, critic + PSRL loss, actor, temperature and target updates.
"""
import dataclasses
from typing import Any, Dict, Tuple

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from psrl_jax import networks, psrl, transforms
from psrl_jax.agents.microbatch import microbatched_grad

RL_LOSS = 'critic TD'    # the RL term of `gradients` (experiments.gradient_shares names it)


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Static (hashable) agent settings; defaults are DrQ's."""
    psrl: psrl.PSRLConfig
    hidden: int = 1024
    feature_dim: int = 50
    learning_rate: float = 1e-3
    init_temperature: float = 0.1
    target_update_tau: float = 0.01
    target_update_period: int = 2
    actor_update_period: int = 2
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    random_steps: int = 0      # agent steps of uniform random actions before the policy acts
    microbatches: int = 1      # chunks the critic's gradient is accumulated over (same gradient)

    @property
    def action_dim(self) -> int:
        return self.psrl.action_dim

    @property
    def target_entropy(self) -> float:
        return -float(self.action_dim)


@flax.struct.dataclass
class SACState:
    """params: {'encoder', 'critic', + PSRL modules} (the critic's optimizer trains them all);
    actor: the actor's parameters; log_alpha: float32 []; target_params: EMA of params."""
    params: Any
    actor: Any
    log_alpha: jnp.ndarray
    target_params: Any
    critic_opt: Any
    actor_opt: Any
    alpha_opt: Any
    updates: jnp.ndarray


def _critic(config: SACConfig) -> networks.Critic:
    return networks.Critic(config.hidden, config.feature_dim)


def _actor(config: SACConfig) -> networks.Actor:
    return networks.Actor(config.action_dim, config.hidden, config.feature_dim,
                          config.log_std_min, config.log_std_max)


def _adam(config: SACConfig, b1: float = 0.9) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate, b1=b1)


def init(key: chex.PRNGKey, config: SACConfig, observation_shape) -> SACState:
    """A fresh agent for observations uint8 [H, W, 3 * stack] of observation_shape."""
    key_psrl, key_critic, key_actor = jax.random.split(key, 3)
    params = psrl.init_params(key_psrl, config.psrl, observation_shape)
    encoder = psrl.make_modules(config.psrl).encoder
    z = encoder.apply(params['encoder'], jnp.zeros((1,) + tuple(observation_shape)))
    params['critic'] = _critic(config).init(key_critic, z, jnp.zeros((1, config.action_dim)))
    actor = _actor(config).init(key_actor, z)
    log_alpha = jnp.log(jnp.asarray(config.init_temperature, jnp.float32))
    return SACState(params=params, actor=actor, log_alpha=log_alpha,
                    target_params=jax.tree.map(jnp.copy, params),
                    critic_opt=_adam(config).init(params), actor_opt=_adam(config).init(actor),
                    alpha_opt=_adam(config, b1=0.5).init(log_alpha),
                    updates=jnp.zeros((), jnp.int32))


def _features(params, observations, config: SACConfig) -> jnp.ndarray:
    """Encoder features of float observations [B, H, W, C] -> [B, h, w, c]."""
    return psrl.make_modules(config.psrl).encoder.apply(params['encoder'], observations)


def sample_action(actor_params, features, key, config: SACConfig) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """A tanh-squashed Gaussian draw: (action [B, A] in (-1, 1), log-probability [B])."""
    mean, log_std = _actor(config).apply(actor_params, features)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    gaussian = -0.5 * (((u - mean) / jnp.exp(log_std)) ** 2 + 2 * log_std + jnp.log(2 * jnp.pi))
    # log(1 - tanh(u)^2), computed stably as 2 (log 2 - u - softplus(-2u)).
    squash = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(gaussian - squash, axis=-1)


def act(state: SACState, observations: jnp.ndarray, key: chex.PRNGKey, step: jnp.ndarray,
        config: SACConfig) -> jnp.ndarray:
    """Training policy: uniform random for config.random_steps agent steps, then a policy draw.

    observations uint8 [B, H, W, C] -> actions float32 [B, A].
    """
    key_policy, key_random = jax.random.split(key)
    features = _features(state.params, observations.astype(jnp.float32) / 255.0, config)
    action, _ = sample_action(state.actor, features, key_policy, config)
    random = jax.random.uniform(key_random, action.shape, minval=-1.0, maxval=1.0)
    return jnp.where(step < config.random_steps, random, action)


def evaluate_act(state: SACState, observations: jnp.ndarray, key: chex.PRNGKey,
                 config: SACConfig) -> jnp.ndarray:
    """Evaluation policy: the deterministic tanh(mean).  uint8 [B, H, W, C] -> float32 [B, A]."""
    del key
    features = _features(state.params, observations.astype(jnp.float32) / 255.0, config)
    mean, _ = _actor(config).apply(state.actor, features)
    return jnp.tanh(mean)


def soft_target(state: SACState, next_observations: jnp.ndarray, returns: jnp.ndarray,
                discount: jnp.ndarray, key: chex.PRNGKey, config: SACConfig) -> jnp.ndarray:
    """The soft Bellman target r + discount (min(Q^t_1, Q^t_2)(s', a') - alpha log pi(a' | s')), [B].

    a' ~ pi(. | s') from the actor on the online encoder's features of s'; the twin target critic
    reads the target encoder's. next_observations: float [B, H, W, C] in [0, 1] (the n-step
    bootstrap observations s'); returns, discount: [B] (discount 0 after a terminal). No gradient.
    """
    next_action, next_log_prob = sample_action(
        state.actor, _features(state.params, next_observations, config), key, config)
    target_q1, target_q2 = _critic(config).apply(
        state.target_params['critic'], _features(state.target_params, next_observations, config),
        next_action)
    soft_value = jnp.minimum(target_q1, target_q2) - jnp.exp(state.log_alpha) * next_log_prob
    return jax.lax.stop_gradient(returns + discount * soft_value)


def gradients(state: SACState, batch, weights: jnp.ndarray, key: chex.PRNGKey, config: SACConfig
              ) -> Tuple[Any, Tuple[jnp.ndarray, jnp.ndarray], Dict[str, jnp.ndarray]]:
    """The critic's gradient (over params: encoder, critic, PSRL modules) on a replay batch
    (replay.Batch with T >= psrl.sequence_length) of sum_b weights_b (twin TD loss + lambda_sim L_sim
    + lambda_c L_c) / B, weights [B] the importance weights. Returns (grads, (|TD error| [B], the
    features of o_k [B, h, w, c]), metrics): `update` steps along it and trains the actor on them."""
    pc = config.psrl
    seq = pc.sequence_length
    key_aug, key_next_aug, key_next, _ = jax.random.split(key, 4)    # the last is the actor's
    observations = transforms.augment(key_aug, batch.observation[:, :seq], pc.augmentation,
                                      pc.augment_per)
    next_observations = transforms.augment(key_next_aug, batch.next_observation, pc.augmentation)

    target_q = soft_target(state, next_observations, batch.returns, batch.discount, key_next, config)
    batch_size = weights.shape[0]

    def critic_loss_fn(params, data):
        observations, target_q, weights, action_sequence, same_episode = data
        query = psrl.encode_query(params, observations, pc)
        q1, q2 = _critic(config).apply(params['critic'], query[:, 0], action_sequence[:, 0])
        td = (q1 - target_q) ** 2 + (q2 - target_q) ** 2
        metrics = {'loss_rl': td.mean(), 'q_mean': q1.mean()}
        auxiliary = jnp.zeros_like(td)
        if pc.enabled:
            target = psrl.encode(state.target_params, observations[:, 1:], pc)
            auxiliary, aux_metrics = psrl.psrl_objective(
                params, state.target_params, query, target, psrl.newest_frames(observations, pc),
                action_sequence[:, :seq - 1], same_episode[:, :seq], pc,
                psrl.correspondence_features(params, state.target_params, observations, pc))
            metrics.update(aux_metrics)
        else:
            metrics.update(loss_sim=jnp.zeros(()), loss_c=jnp.zeros(()))
        loss = jnp.sum(weights * (td + auxiliary)) / batch_size
        return loss, ((jnp.abs(q1 - target_q), query[:, 0]), metrics)

    data = (observations, target_q, weights, batch.action, batch.same_episode)
    return microbatched_grad(critic_loss_fn, state.params, data, config.microbatches)


def update(state: SACState, batch, weights: jnp.ndarray, key: chex.PRNGKey,
           config: SACConfig) -> Tuple[SACState, jnp.ndarray, Dict[str, jnp.ndarray]]:
    """One learner step on a replay batch (replay.Batch with T >= psrl.sequence_length).

    weights: importance weights [B] (ones under DrQ's uniform replay). Returns the new state, the
    priorities |TD error| [B] (unused under uniform replay) and the metrics.
    """
    grads, (td_error, features), metrics = gradients(state, batch, weights, key, config)
    key_actor = jax.random.split(key, 4)[3]
    alpha = jnp.exp(state.log_alpha)
    updates, critic_opt = _adam(config).update(grads, state.critic_opt, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics['grad_norm'] = optax.global_norm(grads)

    # Actor and temperature on the detached features of o_k, applied every actor_update_period.
    features = jax.lax.stop_gradient(features)

    def actor_loss_fn(actor):
        action, log_prob = sample_action(actor, features, key_actor, config)
        q1, q2 = _critic(config).apply(params['critic'], features, action)
        return jnp.mean(alpha * log_prob - jnp.minimum(q1, q2)), log_prob

    (actor_loss, log_prob), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    entropy = -jax.lax.stop_gradient(log_prob).mean()
    alpha_grad = jax.grad(lambda a: jnp.exp(a) * (entropy - config.target_entropy))(state.log_alpha)
    count = state.updates + 1

    def apply_actor(_):
        actor_updates, actor_opt = _adam(config).update(actor_grads, state.actor_opt, state.actor)
        alpha_updates, alpha_opt = _adam(config, b1=0.5).update(alpha_grad, state.alpha_opt,
                                                                  state.log_alpha)
        return (optax.apply_updates(state.actor, actor_updates), actor_opt,
                optax.apply_updates(state.log_alpha, alpha_updates), alpha_opt)

    actor, actor_opt, log_alpha, alpha_opt = jax.lax.cond(
        count % config.actor_update_period == 0, apply_actor,
        lambda _: (state.actor, state.actor_opt, state.log_alpha, state.alpha_opt), None)

    refresh = count % config.target_update_period == 0
    tau = config.target_update_tau
    target_params = jax.tree.map(lambda t, p: jnp.where(refresh, (1 - tau) * t + tau * p, t),
                                 state.target_params, params)
    metrics.update(actor_loss=actor_loss, alpha=alpha, entropy=entropy)
    new_state = SACState(params=params, actor=actor, log_alpha=log_alpha,
                         target_params=target_params, critic_opt=critic_opt, actor_opt=actor_opt,
                         alpha_opt=alpha_opt, updates=count)
    return new_state, jax.lax.stop_gradient(td_error), metrics
