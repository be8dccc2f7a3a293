"""PSRL learns: the psrl preset's short MinAtar run beats the random and best constant-action
policies by the same margin as rainbow's (tests/learning_check.py). A file of its own, so xdist
(`--dist loadfile`) can run it beside the rainbow run."""
from learning_check import assert_learns


def test_psrl_on_minatar_beats_random_and_every_constant_action(tmp_path):
    assert_learns('psrl', str(tmp_path / 'psrl'))
