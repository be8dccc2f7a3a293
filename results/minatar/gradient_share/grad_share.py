"""Per-loss gradient share in a trained MinAtar agent's encoder: the RL loss's gradient alone
(objective's terms off) and the auxiliary objective's (full minus RL), on replay batches of the
run's latest checkpoint. Prints JSON lines."""
import dataclasses, json, sys
import jax, jax.numpy as jnp, numpy as np, optax
from experiments import launch, visualize
from psrl_jax import training, replay
from psrl_jax.agents import rainbow

_orig = rainbow.microbatched_grad
CAPTURE = [False]
def _capture(loss_fn, params, data, microbatches):
    grads, per_example, metrics = _orig(loss_fn, params, data, microbatches)
    return grads, per_example, (dict(metrics, grads=grads) if CAPTURE[0] else metrics)
rainbow.microbatched_grad = _capture

def flat(tree):
    return jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])

def main(workdir, batches=8, step=None):
    record = visualize.read_run(workdir)
    env = launch.make_eval_env('minatar', record['flags']['env'], 1, 0)
    agent = visualize.rebuild_agent(record, 'minatar', env)
    carry, host = training.load_checkpoint(workdir, agent, 1, env.observation_shape,
                                           env.frame_channels, step=step)
    env.close()
    CAPTURE[0] = True
    config = agent.update.keywords['config']
    rl_only = dataclasses.replace(config, psrl=dataclasses.replace(
        config.psrl, correspondence=False, cat=False, aat=False, internal=False))
    state = jax.tree.map(lambda x: jnp.asarray(x[0]), carry.agent)
    buffer = jax.tree.map(lambda x: jnp.asarray(x[0]), carry.replay)

    @jax.jit
    def grads(key, state, buffer):
        k_sample, k_update = jax.random.split(key)
        batch, _, weights = replay.sample(buffer, agent.replay, k_sample, np.float32(1.0))
        full = rainbow.update(state, batch, weights, k_update, config)[2]['grads']
        rl = rainbow.update(state, batch, weights, k_update, rl_only)[2]['grads']
        return full, rl

    enc_name = ['encoder']
    out = {'workdir': workdir, 'step': int(host['step']), 'encoder_keys': enc_name,
           'top_keys': sorted(state.params)}
    rows = []
    for i in range(batches):
        full, rl = grads(jax.random.PRNGKey(1000 + i), state, buffer)
        aux = jax.tree.map(jnp.subtract, full, rl)
        enc = lambda t: flat({k: t[k] for k in enc_name})
        g_rl, g_aux = enc(rl), enc(aux)
        rows.append([float(jnp.linalg.norm(g_rl)), float(jnp.linalg.norm(g_aux)),
                     float(g_rl @ g_aux / (jnp.linalg.norm(g_rl) * jnp.linalg.norm(g_aux) + 1e-12)),
                     float(optax.global_norm(rl)), float(optax.global_norm(aux))])
    r = np.array(rows)
    out.update(enc_rl=r[:, 0].mean(), enc_aux=r[:, 1].mean(), enc_cos=r[:, 2].mean(),
               ratio=(r[:, 1] / r[:, 0]).mean(), all_rl=r[:, 3].mean(), all_aux=r[:, 4].mean())
    CAPTURE[0] = False
    print(json.dumps(out), flush=True)

if __name__ == '__main__':
    for w in sys.argv[1:]:
        main(w)
