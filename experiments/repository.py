"""The repository this code runs from: its root folder, and the git commit that results belong to.

Kept apart from experiments.launch (which defines the launchers' flags) so that experiments.sweep,
which has flags of its own, reads the same root."""
import os
import subprocess
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit() -> Optional[str]:
    """HEAD of the repository holding this file, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_dirty() -> Optional[bool]:
    """Whether tracked files differ from HEAD (the numbers then belong to uncommitted code)."""
    try:
        out = subprocess.run(['git', '--no-optional-locks', 'status', '--porcelain',
                              '--untracked-files=no'], cwd=ROOT, capture_output=True,
                             text=True, timeout=10, check=True)
        return bool(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None
