"""The quickstart notebook runs top to bottom on a CPU (nbclient + ipykernel on this Python) in a
temp dir, shows its pictures and numbers, and is stored without outputs."""
import json
import os
import re
import sys
import time

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'psrl_quickstart.ipynb')
CELL_TIMEOUT = 900      # seconds; the last cells wait for the background training run
BUDGET = 900            # the whole notebook, seconds (a few minutes on an idle 2-core CPU)
MINATAR_STEPS = 1200    # section 6's runs, shortened here: 200 learning steps each


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert code and notebook.cells[0].cell_type == 'markdown'
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert 'REPO_URL' in code[0].source and 'find_spec' in code[0].source   # the install cell


def kernel_manager(tmp_path):
    """A KernelManager whose only 'python3' kernel is this interpreter (sys.executable)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    spec_dir = tmp_path / 'kernels' / 'python3'
    spec_dir.mkdir(parents=True)
    spec = {'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
            'display_name': 'Python 3 (tests)', 'language': 'python'}
    (spec_dir / 'kernel.json').write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / 'kernels')], ensure_native_kernel=False)
    return KernelManager(kernel_name='python3', kernel_spec_manager=specs)


def text_of(cell) -> str:
    return ''.join(out.get('text', '') for out in cell.outputs if out.output_type == 'stream')


def test_notebook_executes_and_shows_its_results(tmp_path, monkeypatch):
    from nbclient import NotebookClient
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path / 'run'
    workdir.mkdir()
    monkeypatch.setenv('TMPDIR', str(tmp_path))   # the kernel's tempfile folders (the agent's run)
    monkeypatch.setenv('QUICKSTART_MINATAR_STEPS', str(MINATAR_STEPS))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name='python3',
                            km=kernel_manager(tmp_path),
                            resources={'metadata': {'path': str(workdir)}})
    start = time.time()
    client.execute()   # raises CellExecutionError naming the cell when one fails
    elapsed = time.time() - start
    assert elapsed < BUDGET, f'the notebook took {elapsed:.0f} s'

    code = [cell for cell in notebook.cells if cell.cell_type == 'code']
    errors = [out for cell in code for out in cell.outputs if out.output_type == 'error']
    assert not errors
    images = [out for cell in code for out in cell.outputs
              if out.output_type == 'display_data' and 'image/png' in out.get('data', {})]
    assert len(images) >= 6, len(images)   # frames, C before, C after, curves, visualizer, MinAtar
    text = '\n'.join(text_of(cell) for cell in code)
    assert 'psrl_jax checkout:' in text
    for needle in ('photometric loss', 'untrained C', 'trained C', 'zero flow', 'loss_c_external',
                   'cos_tr', '"algorithm": "psrl"', 'overview.png'):
        assert needle in text, needle
    # The agent's run went to the kernel's temp folder and wrote the launcher's files.
    runs = list(tmp_path.glob('psrl_quickstart_*/pong'))
    assert len(runs) == 1, runs
    for name in ('config.json', 'metrics.csv', 'summary.json', 'visualize/overview.png'):
        assert (runs[0] / name).stat().st_size > 0, name
    # Section 6: both MinAtar runs evaluated at each quarter, beside the baselines.
    assert re.search(r'^random \d+\.\d\d, best constant action \d: \d+\.\d\d$', text, re.MULTILINE)
    for preset in ('rainbow', 'psrl'):
        evals = [f'at {MINATAR_STEPS * k // 4}' for k in range(1, 5)]
        line = next(l for l in text.splitlines() if l.startswith(f'{preset}: '))
        assert all(e in line for e in evals), line
        summary = json.loads((runs[0].parent / f'minatar_{preset}' / 'summary.json').read_text())
        assert summary['algorithm'] == preset and summary['total_steps'] == MINATAR_STEPS
