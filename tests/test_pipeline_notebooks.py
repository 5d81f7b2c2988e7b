"""Every solutions notebook runs top to bottom without error, quietly, within its time budget.

Budget: 20 s of cell execution on 2 cores for a regular exercise; a lab may declare more in its
notebook metadata (``"course": {"budget_s": 120}``). Kernel start-up is not counted.
"""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ASSIGNMENTS, REPO

DEFAULT_BUDGET_S = 20.0


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_notebook_runs_within_budget(name, tmp_path):
    nb = nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)
    budget = float(nb.metadata.get("course", {}).get("budget_s", DEFAULT_BUDGET_S))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        elapsed = time.perf_counter() - start
    assert elapsed <= budget, f"{name}: cells took {elapsed:.1f} s, budget {budget:.0f} s"
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            stderr = [o.get("text", "") for o in cell.get("outputs", [])
                      if o.get("output_type") == "stream" and o.get("name") == "stderr"]
            assert not stderr, (f"{name}: test cell {meta.get('grade_id')} writes to stderr, which "
                                f"nbgrader scores 0: {json.dumps(stderr)[:300]}")
