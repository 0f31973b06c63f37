"""optuna-dashboard on the protocol's storage: notes, plots and artifacts, seen in headless Chromium.

Screenshots of the dashboard and of the HTML report go to tests/output/ (git-ignored) for a human
to look at. Tests that need Chromium take the `browser` fixture (tests/browser.py): without one they
skip, and with CI=true (.ci/run installs it) they fail.
"""

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import optuna_dashboard
import pytest
from browser import require_browser

from study.cli import report_main
from study.report import candidate_label, dashboard_sections, record_of

OUTPUT = Path(__file__).resolve().parent / "output"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]


def _study(url, name):
    return optuna.load_study(study_name=f"synthetic-tiny-{name}", storage=url)


def test_every_study_has_a_note_in_words_and_numbers(protocol_storage):
    url = protocol_storage["url"]
    for name in ("block", "top3", "head"):
        study = _study(url, name)
        note = optuna_dashboard.get_note(study)
        final = study.user_attrs["final"]
        label = candidate_label(study.best_trial.params["candidate"])  # one label style: block-03, top-3, head
        assert note.startswith(f"## synthetic-tiny-{name}: ")
        assert f"**Winner:** `{label}`" in note
        assert f"**Decision:** Fine-tune {label}" in note  # the default --select best: the winner
        assert f"**Search:** {label}" in note and f"validation accuracy {study.best_value:.3f} ± " in note
        std = float(np.std(final["test_accuracy"], ddof=1))
        assert f"test accuracy {final['mean']:.3f} ± {std:.3f} (mean ± std over 2 seeds)" in note
        runs = final["runs"]
        assert f"Per seed: seed 0: {runs['0']['test_accuracy']:.3f}, seed 1: {runs['1']['test_accuracy']:.3f}." in note
        assert final["artifact_id"] in note
    block = optuna_dashboard.get_note(_study(url, "block"))
    assert "3 candidate(s), one block of weighted layers" in block
    assert "statistically tied with it" in block or "significantly worse" in block  # the decision, in words
    assert "**Against the baselines:** On the same 2 seeds (two-sided paired t-test" in block
    top3 = optuna_dashboard.get_note(_study(url, "top3"))
    assert "(K = 3)" in top3 and "there is nothing to compare it with" in top3
    assert "Not drawn: validation accuracy per candidate: the study has one candidate (top-3)" in top3


def test_figures_are_png_artifacts(protocol_storage, browser):
    # kaleido renders the PNGs with a Chrome/Chromium; without one only the plots below are saved.
    block = _study(protocol_storage["url"], "block")
    files = {a.filename: a for a in optuna.artifacts.get_all_artifact_meta(block)}
    # A PNG per figure, named by the figure and a digest of its content; the headline figure too,
    # since every study of the protocol has its final stage.
    pngs = {re.sub(r"-[0-9a-f]{8}\.png$", "", f): f for f in files if f.endswith(".png")}
    drawn = {s.id for s in dashboard_sections(record_of(block)) if s.figure is not None}  # one point, same curves: not drawn
    assert set(pngs) == drawn | {"test-accuracy-per-strategy"}
    assert files[pngs["parameters-per-layer"]].mimetype == "image/png"


def test_models_and_plots_are_study_artifacts(protocol_storage):
    url = protocol_storage["url"]
    block = _study(url, "block")
    files = {a.filename: a for a in optuna.artifacts.get_all_artifact_meta(block)}
    drawn = {s.id for s in dashboard_sections(record_of(block)) if s.figure is not None}  # one point, same curves: not drawn
    assert {"parameters-per-layer", "validation-accuracy-per-candidate"} <= drawn
    model = [a for a in files.values() if a.artifact_id == block.user_attrs["final"]["artifact_id"]]
    assert model and model[0].filename.endswith(".keras")
    for artifact in files.values():
        assert (Path(protocol_storage["artifacts"]) / artifact.artifact_id).stat().st_size > 1000
    # The interactive versions, and the comparison across strategies, are dashboard plots.
    system_attrs = block._storage.get_study_system_attrs(block._study_id)  # where the dashboard keeps them
    plots = {k.split(":")[2] for k in system_attrs if k.startswith("dashboard:plot_data:")}
    assert drawn | {"test-accuracy-per-strategy"} <= plots
    # A one-candidate study has no one-point figure, neither as a plot nor as a PNG.
    top3 = _study(url, "top3")
    assert not [a for a in optuna.artifacts.get_all_artifact_meta(top3) if a.filename.startswith("validation-accuracy")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(protocol_storage, tmp_path_factory):
    """optuna-dashboard on the loopback interface, stopped after the module."""
    require_browser()  # only browser tests use it: no server to start without one
    port = _free_port()
    command = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which("optuna-dashboard")
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [command, protocol_storage["url"], "--artifact-dir", protocol_storage["artifacts"],
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=2)
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.5)
        else:
            pytest.fail(f"optuna-dashboard did not answer: {log.read_text()}")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _browse(chromium: str, url: str, tmp_path: Path, screenshot: Path | None = None, height: int = 1000) -> str:
    """The DOM of `url` in `chromium` after its scripts ran; with `screenshot`, also a PNG of the window."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    common = [chromium, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*common, f"--screenshot={screenshot}", f"--window-size=1400,{height}", url],
                       capture_output=True, timeout=120)
        assert screenshot.stat().st_size > 10_000
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_dashboard_shows_studies_note_and_artifacts(protocol_storage, browser, dashboard, tmp_path):
    url = protocol_storage["url"]
    home = _browse(browser, f"{dashboard}/dashboard", tmp_path)
    for name in ("head", "full", "layer", "block", "window", "top3", "top5", "random"):
        assert f"synthetic-tiny-{name}" in home

    block = _study(url, "block")
    final = block.user_attrs["final"]
    note = _browse(browser, f"{dashboard}/dashboard/studies/{block._study_id}/note", tmp_path, OUTPUT / "dashboard-note.png")
    std = float(np.std(final["test_accuracy"], ddof=1))
    assert "Winner:" in note and "Decision:" in note and f"{final['mean']:.3f} ± {std:.3f}" in note

    overview = _browse(browser, f"{dashboard}/dashboard/studies/{block._study_id}", tmp_path,
                       OUTPUT / "dashboard-study.png", height=2600)
    for artifact in optuna.artifacts.get_all_artifact_meta(block):
        assert artifact.filename in overview
    assert re.search(r"parameters-per-layer-[0-9a-f]{8}\.png", overview) and ".keras" in overview


def test_report_screenshot(protocol_storage, browser, tmp_path):
    page = tmp_path / "report.html"
    assert report_main(["--storage", protocol_storage["url"], "--output", str(page)]) == 0
    text = _browse(browser, page.as_uri(), tmp_path, OUTPUT / "report.png", height=3200)
    assert "Table I" in text and "tiny: parameters per layer" in text  # the figures rendered
