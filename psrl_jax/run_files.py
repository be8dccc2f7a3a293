"""The per-seed log files of a run: metrics.csv, eval.csv and TensorBoard events."""
import csv
import os
from typing import Dict, Sequence

import numpy as np

class RunLogs:
    """metrics.csv, eval.csv and TensorBoard events of each seed; rows survive restarts exactly once."""

    def __init__(self, seed_dirs: Sequence[str], resume_step: int):
        from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
        self.seed_dirs = list(seed_dirs)
        for directory in self.seed_dirs:
            os.makedirs(directory, exist_ok=True)
            for name in ('metrics.csv', 'eval.csv'):
                _truncate_csv(os.path.join(directory, name), resume_step)
        self.writers = [SummaryWriter(os.path.join(d, 'tensorboard')) for d in self.seed_dirs]

    def write(self, name: str, step: int, rows: Sequence[Dict[str, float]]) -> None:
        for directory, writer, row in zip(self.seed_dirs, self.writers, rows):
            row = {'step': step, **row}
            _append_csv(os.path.join(directory, name), row)
            for key, value in row.items():
                if key != 'step' and np.isfinite(value):
                    writer.add_scalar(f'{name[:-4]}/{key}', value, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _append_csv(path: str, row: Dict[str, float]) -> None:
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if not exists:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: str, step: int) -> None:
    """Drops rows logged after `step` (written after the checkpoint being resumed)."""
    if not os.path.exists(path):
        return
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
    if len(kept) != len(rows):
        with open(path + '.tmp', 'w', newline='') as f:
            csv.writer(f).writerows(kept)
        os.replace(path + '.tmp', path)
