"""The presets: each PSRL ablation is the psrl preset with its one term off, and nothing else moved."""
import pytest

from experiments.configs import atari, dmc, minatar

SUITES = {'atari': atari, 'dmc': dmc, 'minatar': minatar}
ABLATIONS = {'no_cat': 'psrl.cat', 'no_aat': 'psrl.aat', 'no_internal': 'psrl.internal',
             'no_l1': 'psrl.l1'}


def flat(config, prefix=''):
    """{dotted key: value} of a ConfigDict, nested dicts walked."""
    out = {}
    for key, value in config.items():
        if hasattr(value, 'items'):
            out.update(flat(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def differing(a, b):
    return {k for k in a.keys() | b.keys() if a.get(k, '<absent>') != b.get(k, '<absent>')}


@pytest.mark.parametrize('suite', sorted(SUITES))
@pytest.mark.parametrize('ablation', sorted(ABLATIONS))
def test_an_ablation_is_psrl_with_one_term_off(suite, ablation):
    psrl_config = flat(SUITES[suite].get_config('psrl'))
    ablated = flat(SUITES[suite].get_config(ablation))
    assert differing(psrl_config, ablated) == {'algorithm', ABLATIONS[ablation]}
    assert psrl_config[ABLATIONS[ablation]] is True and ablated[ABLATIONS[ablation]] is False


@pytest.mark.parametrize('suite', sorted(SUITES))
def test_psrl_has_every_term_and_spr_only_aat(suite):
    terms = ('correspondence', 'cat', 'aat', 'internal', 'l1')
    psrl_config = SUITES[suite].get_config('psrl').psrl
    spr = SUITES[suite].get_config('spr').psrl
    assert all(psrl_config[t] for t in terms)
    assert [t for t in terms if spr[t]] == ['aat'] and spr.sim_steps == psrl_config.horizon
    baseline = 'drq' if suite == 'dmc' else 'rainbow'
    assert not any(SUITES[suite].get_config(baseline).psrl[t] for t in terms)


@pytest.mark.parametrize('suite', sorted(SUITES))
def test_the_baselines_share_the_rl_agent_and_replay_of_psrl(suite):
    """spr and the plain baseline differ from psrl only in the auxiliary objective, in how the
    update is run (DMControl's microbatches, MinAtar's seed loop) and on Atari in the target (SPR's
    online network; an EMA for PSRL's loss), as the configs say why."""
    psrl_config = flat(SUITES[suite].get_config('psrl'))
    baseline = 'drq' if suite == 'dmc' else 'rainbow'
    allowed = ({'algorithm', 'agent.microbatches', 'seed_loop'}
               | {k for k in psrl_config if k.startswith('psrl.')}
               | ({'agent.target_update_tau'} if suite == 'atari' else set()))
    for preset in ('spr', baseline):
        assert differing(psrl_config, flat(SUITES[suite].get_config(preset))) <= allowed, preset


def test_atari_keeps_spr_online_target_for_its_baselines_and_an_ema_for_psrl_loss():
    assert atari.get_config('rainbow').agent.target_update_tau == 1.0
    assert atari.get_config('spr').agent.target_update_tau == 1.0
    for preset in ('psrl', *ABLATIONS):
        agent = atari.get_config(preset).agent
        assert agent.target_update_period == 1 and 0 < agent.target_update_tau < 1, preset
