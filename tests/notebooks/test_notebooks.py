"""The research notebooks run top to bottom on the bundled real data, and are committed
without outputs.

Each notebook is executed with nbclient in a fresh kernel (the worktree on ``PYTHONPATH``,
matplotlib's Agg backend) under a per-cell and a per-notebook time limit. Outputs are stripped
in git: a notebook with outputs or execution counts fails here (run ``nbstripout
research/notebooks/*.ipynb`` before committing; ``nbstripout --install`` does it on every
commit via ``.gitattributes``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbclient  # the dev extra installs both
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "research" / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
#: seconds one cell may take once kernels are compiled (a cold numba cache compiles inside the first ones)
CELL_TIMEOUT = 240


def test_there_are_notebooks_one_through_six():
    names = [p.stem for p in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_"):
        assert any(n.startswith(prefix) for n in names), f"no notebook {prefix}* in {FOLDER}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    dirty = [k for k, cell in enumerate(book.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; run `nbstripout {path.relative_to(ROOT)}`"
    assert book.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(book, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell and the traceback
    figures = sum(1 for cell in book.cells if cell.cell_type == "code"
                  for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    errors = [out for cell in book.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    assert figures >= 1 or path.stem.startswith(("05_", "06_")), f"{path.name} drew no figure"
    assert list(ROOT.joinpath("research", "notebooks").glob("*.html")) == [], "a notebook wrote into the repo"
