"""Freeway runs at 100k: eval return beside AAT's agreement and y's shift invariance (90k-100k means).
Run from the repository root; writes representation_100k.csv beside this file."""
import os
import sys

import numpy as np

from experiments.aggregate import write_csv
from psrl_jax.evaluation.runs import find_run_files, load_runs

paths, _ = find_run_files(['results/minatar/single/*/freeway_seed*',
                           'results/minatar/switches/freeway/*/freeway_seed*'])
runs, warnings = load_runs(paths)   # switch runs share psrl's name and seeds: named by folder below
print(*warnings, sep='\n', file=sys.stderr)


def late_mean(run, name: str) -> float:
    """The run's logged `name` averaged over the steps after 90k."""
    return round(float(np.nanmean(run.train_curve[name][run.train_curve['step'] > 90000])), 3)


rows = [dict(run='/'.join(run.path.split(os.sep)[-2:]), return_100k=run.eval_return_mean,
             agreement=-late_mean(run, 'cos_pr'), y_shift_cos=late_mean(run, 'y_shift_cos'),
             q_mean=late_mean(run, 'q_mean')) for run in runs]
write_csv(rows, os.path.join(os.path.dirname(__file__), 'representation_100k.csv'))
for row in rows:
    print(*row.values(), sep='\t')
