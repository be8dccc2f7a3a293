"""Settings shared by the Atari and DMControl configs: the PSRL objective and its presets."""
import ml_collections

# Switches of psrl_jax.psrl.PSRLConfig for each preset of the auxiliary objective.
OBJECTIVES = {
    'psrl': {},
    'spr': dict(correspondence=False, cat=False, internal=False, l1=False, sim_steps=5),
    'none': dict(correspondence=False, cat=False, aat=False, internal=False, l1=False),
    'no_cat': dict(cat=False),
    'no_aat': dict(aat=False),
    'no_internal': dict(internal=False),
    'no_l1': dict(l1=False),
}


def psrl_config(objective: str, **overrides) -> ml_collections.ConfigDict:
    """PSRL settings. The poster gives no weights, window or M: we start from SPR's (WORKSPACE_NOTES)."""
    config = ml_collections.ConfigDict(dict(
        horizon=5,                 # M + 1 = K = 5 external maps, as SPR's K
        sim_steps=1,               # L_sim on the single next step, as the poster
        correspondence=True, cat=True, aat=True, internal=True, l1=True,
        lambda_sim=10.0,           # = SPR's 5 x (2 - 2 cos): our L_s is -cos
        lambda_c=1.0,
        smoothness_weight=0.01,
        max_displacement=3,
        displacement_penalty=2.0,  # C's initial prior towards small flows, alpha |d|^2 (cells)
        correspondence_hidden=64,
        correspondence_resolution=0,   # C matches on the encoder's final map
        correspondence_refinement=True,   # C refines its soft-argmax flow with 3 convolutions
        correspondence_map='final',   # or 'early': C on the first convolution's map (Atari only)
        transition_hidden=64,
        projection_dim=512,
        augment_per='frame',       # augmentation draws per frame stack ('frame'), 'sequence' or 'mixed'
        cat_flow_gradients=True,   # L_sim's gradient reaches C through CAT's warp
        # z^q_{k+i} that pass gradients to the encoder, 'all' or 'first' (z^q_k, as SPR's online
        # encoder): 'first' costs Atari's update 0.68x the time (psrl/spr 1.37 vs 2.03 on this CPU)
        # and C's checks nothing on MinAtar (WORKSPACE_NOTES.md, "PSRL's cost").
        query_gradients='first',
    ))
    config.update(overrides)
    config.update(OBJECTIVES[objective])
    return config


def check_preset(preset: str, choices) -> None:
    """Raises ValueError naming the valid presets unless `preset` is one of them."""
    if preset not in choices:
        raise ValueError(f'unknown preset {preset!r}: choose one of {", ".join(choices)}')
