"""Run folders: finding and reading the files a training run writes, and grouping runs.

Run folders follow DESIGN.md's output contract: `summary.json`, `eval.csv`, `metrics.csv` (and
`seed_<k>/` subfolders for multi-seed runs).
"""

import csv
import dataclasses
import glob
import json
import math
import os
import re
from typing import Any, Sequence

import numpy as np

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.envs.minatar import MINATAR_GAMES

_ATARI_NAME = re.compile(r'^[A-Z][A-Za-z0-9]*$')
_DMC_NAME = re.compile(r'^[a-z][a-z0-9_]*-[a-z][a-z0-9_]*$')


@dataclasses.dataclass
class RunResult:
    """One finished run (one seed): its summary.json plus its eval and training curves.

    `eval_curve` and `train_curve` map the columns of eval.csv and metrics.csv to float arrays
    [rows] (empty dicts when the file is absent).
    """
    path: str
    algorithm: str
    env: str
    suite: str
    seed: int
    total_steps: int
    eval_return_mean: float
    eval_return_std: float
    eval_episodes: int
    eval_curve: dict[str, np.ndarray]
    train_curve: dict[str, np.ndarray]


def env_suite(env: str) -> str | None:
    """'atari' for an Atari game name (e.g. 'Pong'), 'dmc' for domain-task (e.g.
    'cartpole-swingup'), 'minatar' for a MinAtar game (e.g. 'breakout'), None for anything else."""
    if env in ATARI_100K_GAMES or _ATARI_NAME.match(env):
        return 'atari'
    if _DMC_NAME.match(env):
        return 'dmc'
    if env in MINATAR_GAMES:
        return 'minatar'
    return None


def find_summary_files(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Every summary.json at or below the paths matched by the glob `patterns`.

    Returns:
      (sorted unique summary paths, patterns that matched nothing). `checkpoints/` folders
      are not searched.
    """
    found, unmatched = set(), []
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True)
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            if os.path.isfile(match) and os.path.basename(match) == 'summary.json':
                found.add(os.path.normpath(match))
            elif os.path.isdir(match):
                for root, dirs, files in os.walk(match):
                    dirs[:] = sorted(d for d in dirs if d != 'checkpoints')
                    if 'summary.json' in files:
                        found.add(os.path.normpath(os.path.join(root, 'summary.json')))
    return sorted(found), unmatched


def _read_curve(path: str) -> dict[str, np.ndarray]:
    """Columns of a numeric CSV file -> float arrays [rows]; {} when the file is absent."""
    if not os.path.exists(path):
        return {}
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        names = reader.fieldnames or []
    try:
        return {n: np.array([float(r[n]) if r[n] not in ('', None) else np.nan for r in rows])
                for n in names}
    except (TypeError, ValueError) as e:
        raise ValueError(f'{path}: non-numeric value ({e})') from None


def load_run(summary_path: str) -> RunResult:
    """Reads one run folder from its summary.json (and eval.csv, metrics.csv beside it).

    Raises:
      ValueError: the summary is not valid JSON, lacks a required key, has a wrong type, names
        an environment of no suite, or a CSV beside it is not numeric.
    """
    try:
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'unreadable JSON ({e})') from None
    if not isinstance(summary, dict):
        raise ValueError('not a JSON object')

    def get(key, kind, required=True, default=None):
        if key not in summary or summary[key] is None:
            if required:
                raise ValueError(f'missing key {key!r}')
            return default
        value = summary[key]
        ok = (isinstance(value, str) and value if kind is str else
              isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            raise ValueError(f'bad value for {key!r}: {value!r}')
        return value

    algorithm, env = get('algorithm', str), get('env', str)
    env = env[:-3] if env.endswith('-v5') else env
    suite = env_suite(env)
    if suite is None:
        raise ValueError(f'env {env!r} is neither an Atari game, a DMControl domain-task nor a '
                         f'MinAtar game')
    seed, total_steps = get('seed', int), get('total_steps', int)
    ret_mean = get('eval_return_mean', float)
    if not math.isfinite(ret_mean):
        raise ValueError(f'eval_return_mean is not finite: {ret_mean!r}')
    run_dir = os.path.dirname(summary_path)
    return RunResult(
        path=run_dir, algorithm=algorithm, env=env, suite=suite, seed=int(seed),
        total_steps=int(total_steps), eval_return_mean=float(ret_mean),
        eval_return_std=float(get('eval_return_std', float, False, math.nan)),
        eval_episodes=int(get('eval_episodes', int, False, 0)),
        eval_curve=_read_curve(os.path.join(run_dir, 'eval.csv')),
        train_curve=_read_curve(os.path.join(run_dir, 'metrics.csv')))


def load_runs(summary_paths: Sequence[str]) -> tuple[list[RunResult], list[str]]:
    """Loads every run; a malformed one is skipped with a warning naming its file.

    Returns:
      (runs, warnings): one warning line per skipped file or doubtful group.
    """
    runs, warnings = [], []
    for path in summary_paths:
        try:
            runs.append(load_run(path))
        except ValueError as e:
            warnings.append(f'skipping {path}: {e}')
    seen: dict[tuple[str, str, int], str] = {}
    for run in runs:
        key = (run.algorithm, run.env, run.seed)
        if key in seen:
            warnings.append(f'{run.algorithm} {run.env} seed {run.seed} appears twice '
                            f'({seen[key]} and {run.path}); both are counted')
        seen[key] = run.path
    return runs, warnings


def group_runs(runs: Sequence[RunResult], key) -> dict[Any, list[RunResult]]:
    """key(run) -> the runs with that key, each group sorted by (seed, path)."""
    groups: dict[Any, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    for members in groups.values():
        members.sort(key=lambda r: (r.seed, r.path))
    return groups


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for fewer than two values)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def steps_label(members: Sequence[RunResult]) -> str:
    """The distinct total_steps of runs joined by '/', e.g. '100000' or '50000/100000'."""
    return '/'.join(str(s) for s in sorted({r.total_steps for r in members}))

