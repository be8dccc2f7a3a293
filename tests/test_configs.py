"""The presets: each PSRL ablation is the psrl preset with its one term off, and nothing else moved."""
import pytest

from experiments.configs import atari, dmc, minatar
from psrl_jax.evaluation import runs as run_folders

SUITES = {'atari': atari, 'dmc': dmc, 'minatar': minatar}
BASELINES = {'atari': 'rainbow', 'dmc': 'drq', 'minatar': 'rainbow'}   # no auxiliary loss
ABLATIONS = {'no_cat': 'psrl.cat', 'no_aat': 'psrl.aat', 'no_internal': 'psrl.internal',
             'no_l1': 'psrl.l1'}


def differing(suite, preset, other):
    """The dotted keys where two presets' configs differ, as the report names a run's switches."""
    a, b = [SUITES[suite].get_config(p).to_dict() for p in (preset, other)]
    # switches() leaves out a setting only one side holds: presets must hold the same settings.
    assert a.keys() == b.keys() and all(a[k].keys() == b[k].keys() for k in a if isinstance(a[k], dict))
    return {switch.split('=', 1)[0] for switch in run_folders.switches(a, b)}


@pytest.mark.parametrize('suite', sorted(SUITES))
@pytest.mark.parametrize('ablation', sorted(ABLATIONS))
def test_an_ablation_is_psrl_with_one_term_off(suite, ablation):
    assert differing(suite, 'psrl', ablation) == {'algorithm', ABLATIONS[ablation]}
    term = ABLATIONS[ablation].split('.')[1]
    assert SUITES[suite].get_config('psrl').psrl[term] is True
    assert SUITES[suite].get_config(ablation).psrl[term] is False


@pytest.mark.parametrize('suite', sorted(SUITES))
def test_psrl_has_every_term_and_spr_only_aat(suite):
    terms = ('correspondence', 'cat', 'aat', 'internal', 'l1')
    psrl_config = SUITES[suite].get_config('psrl').psrl
    spr = SUITES[suite].get_config('spr').psrl
    assert all(psrl_config[t] for t in terms)
    assert [t for t in terms if spr[t]] == ['aat'] and spr.sim_steps == psrl_config.horizon
    assert not any(SUITES[suite].get_config(BASELINES[suite]).psrl[t] for t in terms)


@pytest.mark.parametrize('suite', sorted(SUITES))
def test_the_baselines_share_the_rl_agent_and_replay_of_psrl(suite):
    """spr and the plain baseline differ from psrl only in the auxiliary objective, in how the
    update is run (DMControl's microbatches, MinAtar's seed loop) and on Atari in the target (SPR's
    online network; an EMA for PSRL's loss), as the configs say why."""
    allowed = ({'algorithm', 'agent.microbatches', 'seed_loop'}
               | {f'psrl.{k}' for k in SUITES[suite].get_config('psrl').psrl}
               | ({'agent.target_update_tau'} if suite == 'atari' else set()))
    for preset in ('spr', BASELINES[suite]):
        assert differing(suite, 'psrl', preset) <= allowed, preset


def test_atari_keeps_spr_online_target_for_its_baselines_and_an_ema_for_psrl_loss():
    assert atari.get_config('rainbow').agent.target_update_tau == 1.0
    assert atari.get_config('spr').agent.target_update_tau == 1.0
    for preset in ('psrl', *ABLATIONS):
        agent = atari.get_config(preset).agent
        assert agent.target_update_period == 1 and 0 < agent.target_update_tau < 1, preset
