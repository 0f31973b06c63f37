"""notebooks/analysis.ipynb executes headless against a storage and draws every figure."""

from pathlib import Path

import nbformat
import optuna
from nbclient import NotebookClient

from study import report

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis.ipynb"


def test_notebook_runs_against_the_protocol_storage(protocol_storage, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDY_STORAGE", protocol_storage["url"])  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        str(o.get("data", {}).get("text/html", "")) + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    studies = optuna.get_all_study_summaries(protocol_storage["url"])
    assert f"{len(studies)} studies in {protocol_storage['url']}" in text
    assert "<table class='table1'>" in text
    for study in studies:
        assert f"{study.user_attrs['final']['mean']:.6f}" in text
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    # Every figure the report draws: parameters, finals, the per-candidate figures of layer, block and window
    # (a figure of one point or of identical curves is not drawn).
    assert len(figures) == len(report.figures(report.load_records(protocol_storage["url"]))) >= 2 + 3
