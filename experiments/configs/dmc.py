"""DMControl 100k/500k config (DrQ's SAC + PSRL). Presets: --config=.../dmc.py:<preset>.

psrl (default), drq (no auxiliary loss), spr (K-step AAT with cosine loss), and the PSRL
ablations no_cat, no_aat, no_internal, no_l1.
"""
import ml_collections

from experiments.configs import common

PRESETS = ('psrl', 'drq', 'spr', 'no_cat', 'no_aat', 'no_internal', 'no_l1')
# The launcher's flag defaults (experiments/train_dmc.py; experiments.sweep reads them too).
LAUNCH_DEFAULTS = dict(env='cartpole-swingup', total_steps=100_000, learning_starts=1000,
                       eval_episodes=10, eval_every=10_000, checkpoint_every=50_000)


def get_config(preset: str = 'psrl') -> ml_collections.ConfigDict:
    common.check_preset(preset, PRESETS)
    config = ml_collections.ConfigDict()
    config.algorithm = preset
    # DrQ's settings (the seed table's DrQ column): lr 1e-3, hidden 1024, tau 0.01 every 2 steps.
    config.agent = ml_collections.ConfigDict(dict(
        hidden=1024, feature_dim=50, learning_rate=1e-3, init_temperature=0.1,
        target_update_tau=0.01, target_update_period=2, actor_update_period=2,
        log_std_min=-10.0, log_std_max=2.0,
        augmentation=('shift',),
        # The critic's gradient is accumulated over chunks of the batch (the same gradient): PSRL
        # encodes M + 1 = 5 frames per example with gradients, 7.6 GB of XLA temporaries at batch
        # 512 in one piece, 3.6 GB in 4 (WORKSPACE_NOTES.md, "PSRL's cost").
        microbatches=1 if preset in ('drq', 'spr') else 4,
    ))
    config.replay = ml_collections.ConfigDict(dict(
        capacity=100_000,          # agent steps, as DrQ (a ring buffer for longer runs)
        n_step=1, gamma=0.99, batch_size=512,
        priority_exponent=0.0, priority_weight_start=1.0, priority_weight_end=1.0,
    ))
    config.updates_per_step = 1
    config.update_period = 1       # agent steps between learning steps
    config.seed_loop = False       # on a CPU: the seeds' updates one by one (training.over_seeds)
    # C matches on the 35x35 feature map resized to 18x18 (cells of 4.7 px): a 2-cell window
    # reaches +-9 pixels, as 4 cells of 35x35 did, at a ninth of the volume and of C's
    # refinement convolutions; its flow is up-sampled back to 35x35 (WORKSPACE_NOTES.md). A weaker
    # prior than Atari's (cells of 4.7 px, not 12). G runs at 35x35, so C and G are kept narrow
    # (32 channels) and psi small; at 64 channels they cost 4x the DrQ update.
    # C's inputs: half of a batch's subsequences share one shift, the rest are shifted per frame
    # stack ('mixed'). With L_c alone it is the one setting that finds the copies' relative shift
    # and warps clean consecutive frames better than zero flow on both tasks and seeds measured
    # (cheetah-run 3.11 px / 0.83 and 2.39 / 0.89, walker-walk 2.60 / 0.77; per frame 2.00 / 1.18,
    # 1.69 / 1.09, 2.21 / 0.88; results/correspondence/issue16/dmc_*), and it ties the per-frame
    # return on MinAtar breakout (WORKSPACE_NOTES.md, "Half and half"). drq and spr keep DrQ's and
    # SPR's draw per frame stack.
    config.psrl = common.psrl_config('none' if preset == 'drq' else preset, max_displacement=2,
                                     correspondence_resolution=18, displacement_penalty=1.0,
                                     correspondence_hidden=32, transition_hidden=32,
                                     projection_dim=128,
                                     augment_per='frame' if preset in ('drq', 'spr') else 'mixed')
    return config
