"""Fixtures shared by the test files."""
import errno
import os
import subprocess

import pytest


class Tmpfs:
    """Small tmpfs file systems for real ENOSPC and EROFS errors, unmounted after the test."""

    def __init__(self, root):
        self.root = root
        self.mounted = []

    def mount(self, size_mb: int):
        """A new, empty tmpfs folder of size_mb MiB; skips the test where mounting is not allowed
        (it needs root)."""
        path = self.root / f'tmpfs_{len(self.mounted)}'
        path.mkdir()
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mb}m', 'tmpfs',
                                 str(path)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f'cannot mount a tmpfs here: {result.stderr.strip()}')
        self.mounted.append(path)
        return path

    @staticmethod
    def read_only(path) -> None:
        subprocess.run(['mount', '-o', 'remount,ro', str(path)], check=True)

    @staticmethod
    def fill(path, leave_kb: int = 0) -> str:
        """Fills the file system of `path` with a file (returned) until a write fails with ENOSPC,
        then frees leave_kb KiB of it.

        Files already there keep the unused end of their last page, so a short append to one of
        them may still succeed.
        """
        filler = os.path.join(path, 'filler')
        with open(filler, 'wb', buffering=0) as f:
            for chunk in (1 << 20, 1 << 12):
                try:
                    while True:
                        f.write(b'\0' * chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
        os.truncate(filler, os.path.getsize(filler) - leave_kb * 1024)
        return filler

    def unmount_all(self) -> None:
        for path in reversed(self.mounted):
            subprocess.run(['umount', '--lazy', str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounts = Tmpfs(tmp_path)
    yield mounts
    mounts.unmount_all()
