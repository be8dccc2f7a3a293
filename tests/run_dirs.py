"""Helpers for tests that compare run directories."""
import hashlib
import os


def snapshot(path) -> dict:
    """Every folder and file under `path` (or the file `path`), with each file's SHA-256 and
    modification time: equal snapshots mean nothing was created, removed or written."""
    def file_state(name):
        with open(name, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest(), os.stat(name).st_mtime_ns
    if os.path.isfile(path):
        return {'': file_state(path)}
    state = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            state[os.path.relpath(os.path.join(folder, name), path)] = 'folder'
        for name in files:
            full = os.path.join(folder, name)
            state[os.path.relpath(full, path)] = file_state(full)
    return state
