"""DMControl 100k/500k config (DrQ's SAC + PSRL). Presets: --config=.../dmc.py:<preset>.

psrl (default), drq (no auxiliary loss), spr (K-step AAT with cosine loss), and the PSRL
ablations no_cat, no_aat, no_internal, no_l1.
"""
import ml_collections

from experiments.configs import common

PRESETS = ('psrl', 'drq', 'spr', 'no_cat', 'no_aat', 'no_internal', 'no_l1')


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
    ))
    config.replay = ml_collections.ConfigDict(dict(
        capacity=100_000,          # agent steps, as DrQ (a ring buffer for longer runs)
        n_step=1, gamma=0.99, batch_size=512,
        priority_exponent=0.0, priority_weight_start=1.0, priority_weight_end=1.0,
    ))
    config.updates_per_step = 1
    # 35x35 feature maps: a 4-cell window reaches +-10 pixels, and a weaker prior than Atari's
    # (cells of 2.4 px, not 12) lets C reach them. C and G run at 35x35, so they are kept narrow
    # (32 channels) and psi small; at 64 channels they cost 4x the DrQ update.
    config.psrl = common.psrl_config('none' if preset == 'drq' else preset, max_displacement=4,
                                     displacement_penalty=1.0, correspondence_hidden=32,
                                     transition_hidden=32, projection_dim=128)
    return config
