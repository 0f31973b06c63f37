"""python -m study.report: content, numbers from the storage, errors, read-only."""

import hashlib
import math
import re
from pathlib import Path

import optuna
import pytest

from study.config import StudyConfig
from study.report import LABELS, StudyRecord, load_records, main, table_rows

MODELS = ["vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "resnet50_v2"]


@pytest.fixture(scope="module")
def report(protocol_storage, tmp_path_factory):
    db = Path(protocol_storage["url"].removeprefix("sqlite:///"))
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["--storage", protocol_storage["url"], "--output", str(path)]) == 0
    return {"html": path.read_text(), "digest": digest, "db": db, "path": path}


def _table(page):
    """Table I of the page as {row: {column: text}}."""
    table = re.search(r"<table class='table1'>(.*?)</table>", page).group(1)
    columns = re.findall(r"<th>(.*?)</th>", re.search(r"<thead>(.*?)</thead>", table).group(1))[1:]
    rows = {}
    for row in re.findall(r"<tr class='\w+'>(.*?)</tr>", table):
        name = re.match(r"<th>(.*?)</th>", row).group(1)
        cells = [re.sub(r"</?b>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
        rows[name] = dict(zip(columns, cells))
    return rows


def test_report_has_every_strategy_with_the_stored_numbers(protocol_storage, report):
    page = report["html"]
    rows = _table(page)
    assert list(rows) == ["tiny (synthetic)", "Mean", "Variance"]
    assert list(rows["Mean"]) == list(LABELS.values())  # every strategy, the paper's column order
    for study in optuna.get_all_study_summaries(protocol_storage["url"]):
        record = load_records(protocol_storage["url"], [study.study_name])[0]
        mean = study.user_attrs["final"]["mean"]
        assert rows["tiny (synthetic)"][record.label] == f"{mean:.6f}"
        assert rows["Mean"][record.label] == f"{mean:.6f}"  # one model: the mean is its value
        assert rows["Variance"][record.label] == "–"  # undefined for one model (ddof=1)
        # The study's summary line carries its best validation accuracy and test accuracy ± std.
        final = study.user_attrs["final"]
        assert f"test accuracy {final['mean']:.4f} ± {math.sqrt(final['variance']):.4f} over 2 seed(s)" in page
    for title in ("parameters per layer", "final test accuracy per strategy", "learning curves",
                  "synthetic-tiny-block: validation accuracy per candidate"):
        assert title in page


def test_report_is_self_contained_and_reads_only(report):
    page = report["html"]
    assert page.count("plotly.js v") == 1  # inlined once, for every figure
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched: it opens offline
    assert hashlib.sha256(report["db"].read_bytes()).hexdigest() == report["digest"]


def test_only_the_named_studies_are_reported(protocol_storage, tmp_path):
    out = tmp_path / "block.html"
    assert main(["--storage", protocol_storage["url"], "--study", "synthetic-tiny-block", "--output", str(out)]) == 0
    rows = _table(out.read_text())
    assert list(rows["Mean"]) == ["BW"]


def test_table_mean_and_variance_are_the_papers():
    # Table I, Baseline I column of the paper: its Mean and Variance rows (variance with ddof=1).
    values = [0.713896, 0.828338, 0.811081, 0.30881, 0.778383]
    records = [
        StudyRecord(f"flowers-{m}-head", StudyConfig(model=m, strategy="head"), {"final": {"mean": v}}, [])
        for m, v in zip(MODELS, values)
    ]
    columns, rows = table_rows(records)
    assert columns == ["Baseline I"] and [r[0] for r in rows] == [*(f"{m} (tf_flowers)" for m in MODELS), "Mean", "Variance"]
    assert rows[-2][1][0] == pytest.approx(0.688102, abs=1e-6)
    assert rows[-1][1][0] == pytest.approx(0.046867, abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda tmp, url: ["--storage", f"sqlite:///{tmp}/none.db"], "no such SQLite file"),
        (lambda tmp, url: ["--storage", "nosuchdb://host/db"], "cannot open it"),
        (lambda tmp, url: ["--storage", url, "--study", "nope"], "--study 'nope' is not in the storage"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(protocol_storage, tmp_path, capsys, args, message):
    code = main([*args(tmp_path, protocol_storage["url"]), "--output", str(tmp_path / "r.html")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "none.db").exists()


def test_command_line_writes_the_report(protocol_storage, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli.html"
    ok = subprocess.run([sys.executable, "-m", "study.report", "--storage", protocol_storage["url"], "--output", str(out)],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.strip() == f"report: {out}" and "Table I" in out.read_text()
    bad = subprocess.run([sys.executable, "-m", "study.report", "--storage", f"sqlite:///{tmp_path}/x.db"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr
