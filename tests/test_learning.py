"""The agents learn: a short MinAtar run of the rainbow preset beats the random and best
constant-action policies by a stated margin (tests/learning_check.py)."""
from learning_check import assert_learns


def test_rainbow_on_minatar_beats_random_and_every_constant_action(tmp_path):
    assert_learns('rainbow', str(tmp_path / 'rainbow'))
