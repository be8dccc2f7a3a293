"""Run folders: finding and reading the files a training run writes, and grouping runs.

Run folders follow DESIGN.md's output contract: `summary.json`, `eval.csv`, `metrics.csv` (and
`seed_<k>/` subfolders for multi-seed runs, `config.json` in the run directory). A finished run is
read from its summary.json; any run, finished or still training, can be read at one evaluation
step from its eval.csv (`load_run_at_step`), so runs in progress compare at a common step.
"""

import csv
import dataclasses
import glob
import json
import math
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.envs.minatar import MINATAR_GAMES
from psrl_jax.psrl import TERMS as psrl_terms

_ATARI_NAME = re.compile(r'^[A-Z][A-Za-z0-9]*$')
_DMC_NAME = re.compile(r'^[a-z][a-z0-9_]*-[a-z][a-z0-9_]*$')
_SEED_DIR = re.compile(r'^seed_(\d+)$')


@dataclasses.dataclass
class RunResult:
    """One run (one seed): its result at `total_steps` plus its eval and training curves.

    `eval_curve` and `train_curve` map the columns of eval.csv and metrics.csv to float arrays
    [rows] (empty dicts when the file is absent); a run read at a step holds them up to that step.
    `config`: the launcher's resolved config from config.json (None where it could not be read).
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
    config: dict | None = None


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


def _env_and_suite(env: str) -> tuple[str, str]:
    """(env without a '-v5' suffix, its suite); raises ValueError for an env of no suite."""
    env = env[:-3] if env.endswith('-v5') else env
    suite = env_suite(env)
    if suite is None:
        raise ValueError(f'env {env!r} is neither an Atari game, a DMControl domain-task nor a '
                         f'MinAtar game')
    return env, suite


def find_run_files(patterns: Sequence[str], name: str = 'summary.json'
                   ) -> tuple[list[str], list[str]]:
    """Every file called `name` (summary.json, eval.csv) at or below the paths matched by the glob
    `patterns`.

    Returns:
      (sorted unique paths, patterns that matched nothing). `checkpoints/` folders are not
      searched.
    """
    found, unmatched = set(), []
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True)
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            if os.path.isfile(match) and os.path.basename(match) == name:
                found.add(os.path.normpath(match))
            elif os.path.isdir(match):
                for root, dirs, files in os.walk(match):
                    dirs[:] = sorted(d for d in dirs if d != 'checkpoints')
                    if name in files:
                        found.add(os.path.normpath(os.path.join(root, name)))
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
        ok = isinstance(value, str) and value if kind is str else _is_number(value)
        if not ok:
            raise ValueError(f'bad value for {key!r}: {value!r}')
        return value

    algorithm, env = get('algorithm', str), get('env', str)
    env, suite = _env_and_suite(env)
    seed, total_steps = get('seed', int), get('total_steps', int)
    ret_mean = get('eval_return_mean', float)
    if not math.isfinite(ret_mean):
        raise ValueError(f'eval_return_mean is not finite: {ret_mean!r}')
    run_dir = os.path.dirname(summary_path)
    try:
        config = run_config(run_dir)[0].get('config')
    except (ValueError, AttributeError):
        config = None
    return RunResult(
        path=run_dir, algorithm=algorithm, env=env, suite=suite, seed=int(seed),
        total_steps=int(total_steps), eval_return_mean=float(ret_mean),
        eval_return_std=float(get('eval_return_std', float, False, math.nan)),
        eval_episodes=int(get('eval_episodes', int, False, 0)),
        eval_curve=_read_curve(os.path.join(run_dir, 'eval.csv')),
        train_curve=_read_curve(os.path.join(run_dir, 'metrics.csv')),
        config=config if isinstance(config, dict) else None)


def run_config(run_dir: str) -> tuple[dict, int]:
    """The launcher's config.json of a seed's folder (in it, or in the run directory above a
    `seed_<k>` folder) and the seed's index k in the run (0 for a one-seed run)."""
    match = _SEED_DIR.match(os.path.basename(run_dir))
    folder, index = run_dir, 0
    if not os.path.exists(os.path.join(run_dir, 'config.json')) and match:
        folder, index = os.path.dirname(run_dir), int(match[1])
    path = os.path.join(folder, 'config.json')
    try:
        with open(path) as f:
            return json.load(f), index
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'unreadable {path} ({e})') from None


def load_run_at_step(eval_path: str, step: int) -> RunResult:
    """Reads one seed's folder, finished or not, at the evaluation eval.csv holds for `step`.

    The result is that evaluation (total_steps = step); algorithm, env and seed come from the
    launcher's config.json (seed = --seed + k for folder seed_<k>); the curves are cut at `step`.

    Raises:
      ValueError: no readable config.json, an env of no suite, a non-numeric CSV, or no
        evaluation at `step` (the message names the last step evaluated).
    """
    run_dir = os.path.dirname(eval_path)
    record, index = run_config(run_dir)
    try:
        algorithm, env = record['config']['algorithm'], record['flags']['env']
        seed = int(record['flags']['seed']) + index
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'config.json lacks the algorithm, env or seed ({e!r})') from None
    env, suite = _env_and_suite(env)
    evals = _read_curve(eval_path)
    if 'step' not in evals or 'return_mean' not in evals:
        raise ValueError('eval.csv lacks its step or return_mean column')
    steps = evals['step']
    at = np.flatnonzero(steps == step)
    if not at.size or not math.isfinite(evals['return_mean'][at[-1]]):
        last = f'the last at {int(steps.max())}' if steps.size else 'none yet'
        raise ValueError(f'no evaluation at step {step} ({last})')
    row = at[-1]

    def cut(curve):
        if 'step' not in curve:
            return curve
        return {name: values[curve['step'] <= step] for name, values in curve.items()}

    return RunResult(
        path=run_dir, algorithm=algorithm, env=env, suite=suite, seed=seed, total_steps=step,
        eval_return_mean=float(evals['return_mean'][row]),
        eval_return_std=float(evals['return_std'][row]) if 'return_std' in evals else math.nan,
        eval_episodes=int(evals['episodes'][row]) if 'episodes' in evals else 0,
        eval_curve=cut(evals), train_curve=cut(_read_curve(os.path.join(run_dir, 'metrics.csv'))),
        config=record['config'] if isinstance(record['config'], dict) else None)


def switches(config: Mapping[str, Any], preset: Mapping[str, Any], prefix: str = '') -> list[str]:
    """The settings of a run's config that differ from its preset's, as sorted 'key=value' strings
    (dotted keys for nested settings; 1.0 as '1', lists as 'a,b'). A setting only one of the two
    holds is left out: the run started before it existed, or after it was removed."""
    found = []
    for key in sorted(set(config) & set(preset)):
        mine, theirs = config[key], preset[key]
        if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
            found += switches(mine, theirs, f'{prefix}{key}.')
        elif json.dumps(mine) != json.dumps(theirs) and not (
                _is_number(mine) and _is_number(theirs) and float(mine) == float(theirs)):
            found.append(f'{prefix}{key}={_setting(mine)}')
    return found


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _setting(value) -> str:
    """A config value as a label writes it: 1.0 -> '1', [a, b] -> 'a,b'."""
    if isinstance(value, list):
        return ','.join(map(_setting, value))
    return f'{value:g}' if isinstance(value, float) else str(value)


def _read_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config without what its run never reads: the algorithm's name and, when its
    objective has no term (PSRLConfig.enabled false: rainbow, drq), every PSRL setting but the
    terms' switches."""
    read = {k: v for k, v in config.items() if k != 'algorithm'}
    psrl = read.get('psrl')
    if isinstance(psrl, Mapping) and not any(psrl.get(k, True) for k in psrl_terms):
        read['psrl'] = {k: psrl[k] for k in psrl_terms}
    return read


def run_switches(run: RunResult, presets: Callable[[str, str], Mapping | None]) -> list[str] | None:
    """The switches of a run (`switches` of the settings it reads against those of presets(suite,
    algorithm), the preset's config as a JSON dict or None); None where the run has no config or
    no such preset."""
    preset = presets(run.suite, run.algorithm)
    if run.config is None or preset is None:
        return None
    return switches(_read_settings(run.config), _read_settings(preset))


def load_runs(paths: Sequence[str], step: int | None = None,
              presets: Callable[[str, str], Mapping | None] | None = None
              ) -> tuple[list[RunResult], list[str]]:
    """Loads every run: from its summary.json (`step` None), else from its eval.csv at `step`;
    a run that cannot be read is skipped with a warning naming its file. With `presets`, a run
    whose config differs from its preset's is named for the difference ('psrl psrl.lambda_c=0.1',
    run_switches), so that it is not counted as its preset; a switch that every run has (all
    configs read) names none of them and gets one warning line instead.

    Returns:
      (runs, warnings): one warning line per skipped file or doubtful group.
    """
    runs, warnings = [], []
    for path in paths:
        try:
            runs.append(load_run(path) if step is None else load_run_at_step(path, step))
        except ValueError as e:
            warnings.append(f'skipping {path}: {e}')
    if presets is not None:
        found = [run_switches(run, presets) for run in runs]
        shared = (set.intersection(*map(set, found))
                  if found and all(f is not None for f in found) else set())
        for run, own in zip(runs, found):
            run.algorithm = ' '.join([run.algorithm] + [f for f in own or () if f not in shared])
        if shared:
            warnings.append(f'every run differs from its preset in {" ".join(sorted(shared))} '
                            '(left out of the names)')
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

