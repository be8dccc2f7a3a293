"""The paper's tables and human-normalized scores (HNS).

The paper's Atari 100k and DMControl results ship inside the package (psrl_jax/data/atari100k.csv
and dmc.csv) with the human and random reference scores of the 26 Atari games. Everything here is
host-side; `human_normalized_score` is plain arithmetic, so a jitted loop may call it on jax arrays.
"""

import csv
import functools
import importlib.resources
import io
from typing import Sequence

import numpy as np

from psrl_jax.envs.atari import ATARI_100K_GAMES

# The DMControl benchmark: six tasks, two budgets (environment steps).
DMC_TASKS = ('finger-spin', 'cartpole-swingup', 'reacher-easy', 'cheetah-run', 'walker-walk',
             'ball_in_cup-catch')
DMC_BUDGETS = {'100k': 100_000, '500k': 500_000}


def _read_data(name: str) -> list[dict[str, str]]:
    text = importlib.resources.files('psrl_jax.data').joinpath(name).read_text()
    return list(csv.DictReader(io.StringIO(text)))


@functools.lru_cache(maxsize=None)
def _atari_table() -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """(games in file order, column -> game -> value) of psrl_jax/data/atari100k.csv."""
    rows = _read_data('atari100k.csv')
    games = tuple(row['game'] for row in rows)
    columns = [c for c in rows[0] if c != 'game']
    table = {c: {row['game']: float(row[c]) for row in rows} for c in columns}
    return games, table


@functools.lru_cache(maxsize=None)
def _dmc_table() -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """budget -> method -> task -> (mean, std) of psrl_jax/data/dmc.csv."""
    table: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for row in _read_data('dmc.csv'):
        by_method = table.setdefault(row['budget'], {})
        by_method.setdefault(row['method'], {})[row['task']] = (
            float(row['mean']), float(row['std']))
    return table


def paper_atari_games() -> tuple[str, ...]:
    """The game column of the packaged Atari table (26 envpool names, file order)."""
    return _atari_table()[0]


def paper_atari_methods() -> tuple[str, ...]:
    """Method columns of the Atari table: Rainbow, SimPLe, DER, OTRainbow, CURL, DrQ, SPR, PSRL."""
    return tuple(c for c in _atari_table()[1] if c not in ('Human', 'Random'))


def paper_atari_scores() -> dict[str, dict[str, float]]:
    """Raw paper scores at 100k steps: method -> game -> score (a fresh dict)."""
    table = _atari_table()[1]
    return {m: dict(table[m]) for m in paper_atari_methods()}


def human_scores() -> dict[str, float]:
    """Human reference score per game (game -> score)."""
    return dict(_atari_table()[1]['Human'])


def random_scores() -> dict[str, float]:
    """Random-policy reference score per game (game -> score)."""
    return dict(_atari_table()[1]['Random'])


def has_human_score(game: str) -> bool:
    """Whether `game` has human and random reference scores (one of the 26 games)."""
    return game in _atari_table()[1]['Human']


def human_normalized_score(game: str, score):
    """(score - random) / (human - random) for `game`.

    Args:
      game: envpool game name, e.g. 'Pong' (one of ATARI_100K_GAMES).
      score: a scalar, or an array of any shape (numpy, or jax, also under jit); lists and
        tuples become float64 numpy arrays.
    Returns:
      Same shape as `score`: a python float for a python scalar.
    Raises:
      ValueError: `game` has no human score (it is not one of the 26 games).
    """
    table = _atari_table()[1]
    if game not in table['Human']:
        raise ValueError(f'no human/random reference score for game {game!r}; known games: '
                         f'{", ".join(paper_atari_games())}')
    human, rand = table['Human'][game], table['Random'][game]
    if isinstance(score, (list, tuple)):
        score = np.asarray(score, dtype=np.float64)
    return (score - rand) / (human - rand)


def paper_atari_hns(method: str, games: Sequence[str] = ATARI_100K_GAMES) -> np.ndarray:
    """Human-normalized paper scores of `method` on `games`: float64 [len(games)]."""
    scores = paper_atari_scores()
    if method not in scores:
        raise ValueError(f'unknown paper method {method!r}; known: '
                         f'{", ".join(paper_atari_methods())}')
    return np.array([human_normalized_score(g, scores[method][g]) for g in games])



def _budget_key(budget) -> str:
    if isinstance(budget, str) and budget in DMC_BUDGETS:
        return budget
    for key, steps in DMC_BUDGETS.items():
        if not isinstance(budget, (str, bool)) and budget == steps:
            return key
    raise ValueError(f'unknown DMControl budget {budget!r}; use one of '
                     f'{", ".join(DMC_BUDGETS)} (or {", ".join(map(str, DMC_BUDGETS.values()))})')


def paper_dmc_methods() -> tuple[str, ...]:
    """Methods of the DMControl table, in file order."""
    return tuple(_dmc_table()['100k'])


def paper_dmc_scores(budget) -> dict[str, dict[str, tuple[float, float]]]:
    """Paper DMControl results at `budget` ('100k' | '500k' | 100000 | 500000).

    Returns:
      method -> task -> (mean, std) of the episode return (a fresh dict).
    """
    table = _dmc_table()[_budget_key(budget)]
    return {m: dict(tasks) for m, tasks in table.items()}


def nearest_dmc_budget(total_steps: int) -> str:
    """The paper budget ('100k' or '500k') nearest to `total_steps` (ties go to the smaller)."""
    return min(DMC_BUDGETS, key=lambda k: (abs(DMC_BUDGETS[k] - total_steps), DMC_BUDGETS[k]))

