"""MinAtar config: SPR's data-efficient Rainbow + PSRL on 10x10 game grids, the CPU proving ground.

Presets: --config=.../minatar.py:<preset>: psrl (default), spr, rainbow, and the PSRL ablations
no_cat, no_aat, no_internal, no_l1. Settings (WORKSPACE_NOTES.md, "MinAtar"):
- from Revisiting Rainbow's MinAtar runs (Obando-Ceron & Castro 2021, its rainbow_<game>.gin):
  MinAtar's defaults (sticky actions 0.1, difficulty ramping, 6 actions), MinAtar's network (one
  3x3 conv of 16 channels), 3-step returns, Adam eps 3.125e-4, batch 32, prioritized replay of
  100k, 1,000 steps before learning;
- Adam lr 1e-3, not its 1e-4: rainbow on breakout scored 3.74 at 10k steps with 1e-3, 2.86 with 3e-4
  and 1.25 with 1e-4 (one seed each, 50 games);
- C51 over [-10, 10], not Revisiting Rainbow's [-100, 100]: with atoms 4 apart the rainbow preset's
  breakout policy stayed a constant one (0.35 at 5k-25k steps); over [-10, 10] it scored 5.1 at 30k
  (random 0.62, best constant 0.46; WORKSPACE_NOTES.md, "MinAtar");
- data-efficient as DER/SPR instead of its update every 4 steps and target every 1,000: one update
  per step, noisy nets (std 0.5) with epsilon decaying to 0.01 over the first 5,000 steps; the target
  network an EMA of the online one (tau 0.01 per update);
- PSRL's lambda_sim 1 instead of SPR's 10 (measured on breakout; spr keeps 10);
- one augmentation shift per subsequence for psrl and its ablations, not SPR's one per frame (spr and
  rainbow keep it): per frame, CAT codes the shift into y and psrl stalls on freeway.
"""
import ml_collections

from experiments.configs import common

PRESETS = ('psrl', 'spr', 'rainbow', 'no_cat', 'no_aat', 'no_internal', 'no_l1')
# The launcher's flag defaults (experiments/train_minatar.py; experiments.sweep reads them too).
LAUNCH_DEFAULTS = dict(env='breakout', total_steps=100_000, learning_starts=1000,
                       eval_episodes=100, eval_every=10_000, checkpoint_every=25_000)


def get_config(preset: str = 'psrl') -> ml_collections.ConfigDict:
    common.check_preset(preset, PRESETS)
    config = ml_collections.ConfigDict()
    config.algorithm = preset
    config.agent = ml_collections.ConfigDict(dict(
        num_atoms=51, v_min=-10.0, v_max=10.0, hidden=128, noisy_std=0.5,
        learning_rate=1e-3, adam_eps=3.125e-4, max_grad_norm=10.0,
        # An EMA target (as BBF's tau 0.005) instead of SPR's online network: with the online
        # network as its target, PSRL's L1 terms on the raw maps grew until they held the clipped
        # gradient and psrl stopped learning; rainbow learns as fast either way (WORKSPACE_NOTES.md).
        target_update_period=1, target_update_tau=0.01,
        epsilon_start=1.0, epsilon_end=0.01, epsilon_decay_steps=5000, eval_epsilon=0.0,
        augmentation=('grid_shift',),
        microbatches=1,
    ))
    config.replay = ml_collections.ConfigDict(dict(
        capacity=100_000, n_step=3, gamma=0.99, batch_size=32,
        priority_exponent=0.5, priority_weight_start=0.4, priority_weight_end=1.0,
    ))
    config.updates_per_step = 1
    config.update_period = 1       # agent steps between learning steps
    # On a CPU, --num_seeds > 1 runs the seeds' updates one by one where the update is
    # mostly convolutions (XLA:CPU vmaps them as grouped convolutions; WORKSPACE_NOTES.md).
    config.seed_loop = preset != 'rainbow'
    # Objects move about one cell a step: C matches within +-2 cells of the 10x10 map (the frames
    # L_r warps are the grids themselves); C, G and psi are sized to the 16-channel map. C's
    # refinement convolutions are off: half of the update's FLOPs (0.66 of 1.26 GFLOP at batch 32)
    # for no measured gain in C's checks (breakout c_warp_gain 0.120 with, 0.116 without; freeway
    # 0.090 both; WORKSPACE_NOTES.md, "PSRL's cost").
    # L_sim at weight 1, not SPR's 10, for psrl and its ablations (spr keeps SPR's): at 10, with
    # CAT's terms in L_sim, psrl's breakout return stalled (5 seeds at 30k: 4.53 [3.06, 5.85]); at
    # 1 it scored 6.43 [5.48, 7.19] and C warped better (c_warp_gain 0.20 against 0.31;
    # results/minatar/switches_30k/). Chosen on breakout alone.
    lambda_sim = 10.0 if preset == 'spr' else 1.0
    # One shift per subsequence, not SPR's per frame, for psrl and its ablations: per frame, CAT puts
    # the relative shift into y, AAT cannot predict it (agreement 0.06-0.10) and psrl stalled on
    # freeway (5 seeds at 100k: 23.27 [20.27, 26.64]); per subsequence AAT agrees (0.53-0.61) and
    # psrl scored 44.77 [41.36, 48.18] (5 seeds; spr 33.28, rainbow 51.76), asterix gained (5 seeds:
    # 3.26 against 1.88) and C's checks held; breakout tied to 40k but lost at 100k (5 seeds: 9.69
    # against 14.09). results/minatar/switches/; WORKSPACE_NOTES.md.
    config.psrl = common.psrl_config('none' if preset == 'rainbow' else preset, lambda_sim=lambda_sim,
                                     augment_per='frame' if preset in ('rainbow', 'spr') else 'sequence',
                                     max_displacement=2, displacement_penalty=1.0,
                                     correspondence_hidden=16, correspondence_refinement=False,
                                     transition_hidden=16, projection_dim=128)
    return config
