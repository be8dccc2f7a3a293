"""Atari 100k config (SPR's data-efficient Rainbow + PSRL). Presets: --config=.../atari.py:<preset>.

psrl (default), spr (SPR: K-step AAT with cosine loss, no correspondence), rainbow (no auxiliary
loss), and the PSRL ablations no_cat, no_aat, no_internal, no_l1.
"""
import ml_collections

from experiments.configs import common

PRESETS = ('psrl', 'spr', 'rainbow', 'no_cat', 'no_aat', 'no_internal', 'no_l1')
# The launcher's flag defaults (experiments/train_atari.py; experiments.sweep reads them too).
LAUNCH_DEFAULTS = dict(env='Pong', total_steps=100_000, learning_starts=2000, eval_episodes=100,
                       eval_every=0, checkpoint_every=25_000)


def get_config(preset: str = 'psrl') -> ml_collections.ConfigDict:
    common.check_preset(preset, PRESETS)
    config = ml_collections.ConfigDict()
    config.algorithm = preset
    config.agent = ml_collections.ConfigDict(dict(
        num_atoms=51, v_min=-10.0, v_max=10.0, hidden=256, noisy_std=0.5,
        learning_rate=1e-4, adam_eps=1.5e-4, max_grad_norm=10.0,
        # rainbow and spr: SPR's target, the online network. The presets with PSRL's loss: an EMA
        # of it (tau 0.01 every update, MinAtar's; BBF's is 0.005). Against the online network PSRL's
        # L1 terms grew the target maps' scale 50x in 18,000 updates on Breakout, still rising, and
        # the gradient norm to 18x the clip; under the EMA target the scale held (0.10 -> 0.11) and
        # C found shifts better (0.92 of zero flow's error against 1.04). XLA: 1.34x the update's
        # FLOPs, 1.12x its bytes (a separate target pass). WORKSPACE_NOTES.md, "C against ground truth".
        target_update_period=1, target_update_tau=1.0 if preset in ('rainbow', 'spr') else 0.01,
        epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_steps=2000, eval_epsilon=0.0,
        augmentation=('shift', 'intensity'),
        microbatches=1,            # gradient accumulated over this many chunks of the batch
    ))
    config.replay = ml_collections.ConfigDict(dict(
        capacity=100_000,          # the whole 100k run, as SPR; a ring buffer beyond it
        n_step=10, gamma=0.99, batch_size=32,
        priority_exponent=0.5, priority_weight_start=0.4, priority_weight_end=1.0,
    ))
    config.updates_per_step = 2    # SPR's replay ratio 64 at batch 32
    config.update_period = 1       # agent steps between learning steps
    config.seed_loop = False       # on a CPU: the seeds' updates one by one (training.over_seeds)
    # The presets with C draw one augmentation per subsequence: with SPR's draw per frame stack, C
    # trained on L_c over Pong warped clean consecutive frames 15x worse than zero flow (c_warp_gain
    # 14.9 after 300 steps); with one draw per subsequence 1.26, its shift error no worse (4.23 vs
    # 4.17 px; results/correspondence/issue16/atari_Pong_*.json). spr and rainbow keep SPR's.
    # C on the early map with 'mixed' shifts meets both of C's checks on Breakout and Boxing but
    # warps Pong and KungFuMaster worse than zero flow, at 2.2x the bytes: a switch
    # (WORKSPACE_NOTES.md, "Atari at 4,000 steps").
    # C's refinement convolutions are off, as on MinAtar: 3.13 of the update's 10.66 GFLOP and 0.10
    # of its 1.39 GB for nothing measurable in C's checks (300 steps of L_c, 3 seeds: Pong shift
    # error 0.99 of zero flow's without, 0.95 with, c_warp_gain 1.32 vs 1.61; Breakout 0.89 vs 0.91,
    # 0.87 vs 1.01; results/correspondence/issue14/atari_*; WORKSPACE_NOTES.md, "PSRL's cost").
    # lambda_c 100 for the presets with C: at 1, L_c's gradient on the shared encoder is ~1/1,000 of
    # L_sim's and ~1/400 of the RL loss's (experiments.gradient_shares), so under Adam it barely
    # shapes the features C matches. On Breakout (seed 0, EMA target) lambda_c 100 took C's warp to
    # 0.97 of zero flow's over 4,200-5,000 steps (lambda_c 1: 1.93, 10: 3.28 at 2,200-3,000), shift
    # error and target scale as at 1, by a rule set before the run; on Pong 1.62 against 2.91
    # (WORKSPACE_NOTES.md, "C against ground truth"). Returns under it need a GPU; MinAtar keeps 1.
    config.psrl = common.psrl_config(
        'none' if preset == 'rainbow' else preset,
        augment_per='frame' if preset in ('rainbow', 'spr') else 'sequence',
        lambda_c=1.0 if preset in ('rainbow', 'spr') else 100.0,
        correspondence_refinement=False)
    return config
