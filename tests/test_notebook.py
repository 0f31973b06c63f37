"""notebooks/analysis.ipynb executes headless against a storage and draws every figure."""

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import nbformat
import optuna
from browser import NAMES as BROWSER_NAMES
from browser import ci_requires_everything, find_browser
from nbclient import NotebookClient

from study import report

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis.ipynb"


def _run(notebook, folder: Path, allow_errors: bool = False) -> list:
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def test_notebook_runs_against_the_protocol_storage(protocol_storage, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDY_STORAGE", protocol_storage["url"])  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    outputs = _run(notebook, tmp_path)
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
    # A rendered notebook (nbconvert, GitHub) shows the PNG copy; kaleido needs a browser for it.
    pngs = all(o["data"].get("image/png") for o in figures)
    if find_browser() or ci_requires_everything():
        assert pngs
    else:  # without a browser the notebook still runs, and says so
        assert pngs or "figures are interactive only" in text


def _without_a_browser_on_path(monkeypatch) -> None:
    """PATH without any folder that holds a Chrome or Chromium, and no BROWSER_PATH (the kernel inherits both)."""
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    kept = [folder for folder in os.environ.get("PATH", "").split(os.pathsep)
            if not any(shutil.which(name, path=folder) for name in BROWSER_NAMES)]
    monkeypatch.setenv("PATH", os.pathsep.join(kept))


def test_without_a_browser_the_notebook_says_so_at_once(protocol_storage, monkeypatch, tmp_path):
    """No browser reachable at all (none on PATH, no BROWSER_PATH): the PNG probe decides at once,
    where kaleido's server used to wait for a browser until the cell's timeout (300 s)."""
    monkeypatch.setenv("STUDY_STORAGE", protocol_storage["url"])
    _without_a_browser_on_path(monkeypatch)
    problem = report.png_export_problem()  # where kaleido itself looks, with this PATH
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.monotonic() - started
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures and seconds < 120, seconds
    if problem is None:  # kaleido finds one outside PATH (its usual install paths, its own download): it renders
        assert all(o["data"].get("image/png") for o in figures)
    else:
        assert problem.startswith("PNG and SVG need Chrome or Chromium")
        assert f"figures are interactive only (no PNG copies: {problem})" in text
        assert not any(o["data"].get("image/png") for o in figures)


def _first_cells(folder: Path) -> nbformat.NotebookNode:
    """The notebook's set-up cells only (storage and renderers), copied into `folder`."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells = notebook.cells[:2]
    folder.mkdir(parents=True)
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    return notebook


def test_default_storage_is_the_repositorys_when_started_in_notebooks(protocol_storage, monkeypatch, tmp_path):
    monkeypatch.delenv("STUDY_STORAGE", raising=False)
    repo = tmp_path / "repo"
    (repo / "storage").mkdir(parents=True)
    # Copied through SQLite: opening the file and closing it would drop this process's SQLite locks on it.
    with contextlib.closing(sqlite3.connect(protocol_storage["url"].removeprefix("sqlite:///"))) as source, \
            contextlib.closing(sqlite3.connect(repo / "storage" / "studies.db")) as copy:
        source.backup(copy)
    notebook = _first_cells(repo / "notebooks")  # Jupyter starts the kernel in the notebook's folder
    text = "".join(o.get("text", "") for o in _run(notebook, repo / "notebooks"))
    assert f"11 studies in sqlite:///{repo / 'storage' / 'studies.db'}" in text


def test_a_missing_storage_names_study_storage(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDY_STORAGE", "sqlite:///nowhere/studies.db")
    outputs = _run(_first_cells(tmp_path / "notebooks"), tmp_path / "notebooks", allow_errors=True)
    (error,) = [o for o in outputs if o.output_type == "error"]
    assert error.ename == "StudyError" and "--storage" not in error.evalue
    assert error.evalue == (f"STUDY_STORAGE=sqlite:///{tmp_path / 'nowhere' / 'studies.db'}: no such SQLite file; "
                            "run `python -m study.run` first")
