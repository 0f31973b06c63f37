"""python -m study.report: content, numbers from the storage, errors, read-only; Table I as HTML,
CSV and LaTeX (± std, ties, significance against the baselines); the decision in words; figures
(no single-point figure, tied set marked, zoomed axes) and their PNG/SVG export.

The protocol storage (tests/conftest.py) is a real run; `made` is a storage built by hand with
optuna.create_study and set_user_attr, so every number below is known.
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from browser import has_browser
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.candidates import STRATEGIES
from study.candidates._strategies import _Options
from study.cli import report_main as main
from study.config import StudyConfig
from study.report import (
    LABELS,
    StudyRecord,
    baseline_comparisons,
    decision_text,
    export_figures,
    figure_sections,
    figures,
    load_records,
    table_csv,
    table_html,
    table_latex,
    table_notes,
    table_rows,
)
from study.stats import summarize, tied_with_winner
from study.storage import (
    CANDIDATES,
    CONFIG,
    EPOCH_VALUES,
    FINAL,
    INTERVAL_95,
    LAYER_PARAMS,
    LAYERS,
    PARAM,
    REPEAT_VALUES,
    SPLITS,
    STANDARD_ERROR,
    TIED_WITH_WINNER,
    add_final_run,
    new_final,
)

MODELS = ["vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "resnet50_v2"]
OUTPUT = Path(__file__).resolve().parent / "output"
ROOT = Path(__file__).resolve().parents[1]


def _content(db: Path) -> str:
    """A digest of the database's content, read through SQLite: reading the file with open() and
    closing it would drop the POSIX locks this process's SQLite connections hold on it, and the
    subprocesses reading the same storage (report, notebook, dashboard) could then remove its WAL."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()


@pytest.fixture(scope="module")
def report(protocol_storage, tmp_path_factory):
    db = Path(protocol_storage["url"].removeprefix("sqlite:///"))
    digest = _content(db)
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["--storage", protocol_storage["url"], "--output", str(path)]) == 0
    return {"html": path.read_text(), "digest": digest, "db": db, "path": path}


def _rows(page) -> tuple[list[str], dict[str, list[str]]]:
    """Table I of the page: its columns, and {row: [cell markup]}."""
    table = re.search(r"<table class='table1'>(.*?)</table>", page).group(1)
    columns = re.findall(r"<th>(.*?)</th>", re.search(r"<thead>(.*?)</thead>", table).group(1))[1:]
    rows = {re.match(r"<th>(.*?)</th>", row).group(1): re.findall(r"<td[^>]*>(.*?)</td>", row)
            for row in re.findall(r"<tr class='\w+'>(.*?)</tr>", table)}
    return columns, rows


def _table(page):
    """Table I of the page as {row: {column: text}} (markup and significance markers removed)."""
    columns, rows = _rows(page)
    return {name: dict(zip(columns, [re.sub(r"<sup.*?</sup>|</?b>", "", c) for c in cells])) for name, cells in rows.items()}


def _bold(page):
    """{row: [columns in bold]} of Table I."""
    columns, rows = _rows(page)
    return {name: [c for c, cell in zip(columns, cells) if cell.startswith("<b>")] for name, cells in rows.items()}


def test_report_has_every_strategy_with_the_stored_numbers(protocol_storage, report):
    page = report["html"]
    rows = _table(page)
    assert list(rows) == ["tiny (synthetic)", "Mean", "Variance"]
    assert list(rows["Mean"]) == list(LABELS.values())  # every strategy, the paper's column order
    for study in optuna.get_all_study_summaries(protocol_storage["url"]):
        record = load_records(protocol_storage["url"], [study.study_name])[0]
        final = study.user_attrs["final"]
        mean, std = final["mean"], float(np.std(final["test_accuracy"], ddof=1))  # 2 seeds: ± sample std
        assert rows["tiny (synthetic)"][record.label] == f"{mean:.3f} ± {std:.3f}"
        assert rows["Mean"][record.label] == f"{mean:.3f}"  # one model: the mean is its value
        assert rows["Variance"][record.label] == "–"  # undefined for one model (ddof=1)
        assert f"{mean:.6f}" in page  # the exact value, in the cell's tooltip
        # The study's decision in words carries the final test accuracy ± std over the seeds.
        assert f"test accuracy {mean:.3f} ± {std:.3f} (mean ± std over 2 seeds)" in page
    for title in ("parameters per layer", "final test accuracy per strategy", "learning curves",
                  "synthetic-tiny-block: validation accuracy per candidate"):
        assert title in page
    # One-candidate studies get a sentence instead of a one-point figure.
    assert ("<p class='skipped'><b>synthetic-tiny-top3: validation accuracy per candidate</b>: not drawn, the study has "
            "one candidate (top-3)") in page


def test_report_is_self_contained_and_reads_only(report):
    page = report["html"]
    assert page.count("plotly.js v") == 1  # inlined once, for every figure
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched: it opens offline
    assert _content(report["db"]) == report["digest"]


def _copy_storage(url: str, db: Path) -> None:
    """A copy of the storage at `url` in `db`, made through SQLite (see _content); closed after."""
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source, \
            contextlib.closing(sqlite3.connect(db)) as copy:
        source.backup(copy)


STORAGES = {
    "tables only": lambda db, run: optuna.storages.RDBStorage(f"sqlite:///{db}").engine.dispose(),
    "a plain optuna.create_study": lambda db, run: optuna.create_study(
        storage=f"sqlite:///{db}", study_name="plain").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2),
    "a study run's": lambda db, run: _copy_storage(run["url"], db),
}


@pytest.mark.parametrize("kind", STORAGES)
def test_the_report_never_changes_the_storage(protocol_storage, tmp_path, kind, capsys):
    folder = tmp_path / "storage"
    folder.mkdir()
    db = folder / "studies.db"
    STORAGES[kind](db, protocol_storage)
    before, files = db.read_bytes(), sorted(os.listdir(folder))  # nothing in this process has the file open
    assert files == ["studies.db"]
    if kind == "a study run's":
        assert before[18:20] == b"\x02\x02"  # WAL, as study.run leaves it
    url = f"sqlite:///{db}"
    for args in (["--output", str(tmp_path / "r.html"), "--figures", str(tmp_path / "figures")], ["--format", "csv"]):
        main(["--storage", url, *args])
    capsys.readouterr()
    load_records(url)
    assert sorted(os.listdir(folder)) == files  # no -wal, -shm or -journal made
    assert db.read_bytes() == before  # the header too: a rollback-journal file stays one (bytes 18-19)


def test_the_report_reads_a_storage_a_run_has_open(protocol_storage, tmp_path):
    """While another connection writes (a run), the report reads under its locks and sees its latest commit."""
    db = tmp_path / "studies.db"
    _copy_storage(protocol_storage["url"], db)
    url = f"sqlite:///{db}"
    writer = optuna.storages.RDBStorage(url)  # WAL file: the copy is in WAL mode
    try:
        source = optuna.load_study(study_name="synthetic-tiny-block", storage=protocol_storage["url"])
        optuna.copy_study(from_study_name=source.study_name, from_storage=protocol_storage["url"], to_storage=writer,
                          to_study_name="committed-just-now")
        files = sorted(os.listdir(tmp_path))
        assert "studies.db-wal" in files
        assert "committed-just-now" in [r.name for r in load_records(url)]
        assert sorted(os.listdir(tmp_path)) == files
    finally:
        writer.engine.dispose()


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
    out = tmp_path / "cli.html"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "study.report", "--storage", protocol_storage["url"], "--output", str(out)],
                        capture_output=True, text=True, timeout=300, env=env)
    assert ok.returncode == 0 and ok.stdout.strip() == f"report: {out}" and "Table I" in out.read_text()
    bad = subprocess.run([sys.executable, "-m", "study.report", "--storage", f"sqlite:///{tmp_path}/x.db"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr


# --- a storage built by hand: every number known ---------------------------------------------------


def _layers():
    """A MobileNetV2-like backbone: 147 layers, 52 weighted, 10 residual merges (long names, many layers)."""
    layers = [{"name": "input_layer", "class": "InputLayer", "params": 0, "weighted": False, "ends_block": False}]

    def add(name, cls, params, weighted=False, ends=False):
        layers.append({"name": name, "class": cls, "params": params, "weighted": weighted, "ends_block": ends})

    add("Conv1", "Conv2D", 864, True)
    add("bn_Conv1", "BatchNormalization", 128)
    add("expanded_conv_depthwise", "DepthwiseConv2D", 288, True)
    add("expanded_conv_project", "Conv2D", 512, True)
    for b in range(1, 17):
        width = 16 * (1 + b // 3)
        for part, cls, params in (("expand", "Conv2D", width * width * 6), ("depthwise", "DepthwiseConv2D", width * 54),
                                  ("project", "Conv2D", width * width * 6)):
            add(f"block_{b}_{part}", cls, params, True)
            add(f"block_{b}_{part}_BN", "BatchNormalization", width * 4)
            if part != "project":
                add(f"block_{b}_{part}_relu", "ReLU", 0)
        if b in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15):
            add(f"block_{b}_add", "Add", 0, ends=True)
    add("Conv_1", "Conv2D", 409600, True)
    add("Conv_1_bn", "BatchNormalization", 5120)
    add("out_relu", "ReLU", 0)
    return layers


def _study(storage, strategy, values, finals, *, repeats=True, tied=None, pruned=(), top_k=3):
    """One study as `python -m study.run` stores it: values[i] are candidate i's repeat values."""
    config = StudyConfig(dataset="synthetic", model="mobilenet_v2", weights="none", image_size=32, epochs=4,
                         strategy=strategy, top_k=top_k)
    study = optuna.create_study(study_name=config.name, storage=storage, direction="maximize")
    layers = _layers()
    ranked = [layer["name"] for layer in layers if layer["weighted"]][::-1]
    candidates = [c.to_dict() for c in STRATEGIES[strategy].generate(layers, _Options(top_k=top_k), ranked=ranked)]
    names = [c["name"] for c in candidates][: len(values)]
    for name, candidate_values in zip(names, values):
        attrs = {LAYERS: next(c[LAYERS] for c in candidates if c["name"] == name)}
        state = TrialState.PRUNED if name in pruned else TrialState.COMPLETE
        curves = [[round(v - 0.03 * (3 - e), 4) for e in range(4)] for v in candidate_values]
        if repeats:  # --search-repeats: repeat values, their summary, one learning curve per repeat
            summary = summarize(candidate_values)
            attrs.update({REPEAT_VALUES: candidate_values, STANDARD_ERROR: summary.standard_error,
                          INTERVAL_95: summary.interval_95, EPOCH_VALUES: curves})
            steps = dict(enumerate(candidate_values))
        else:  # an older study: one value, the epochs as intermediate values
            steps = {e + 1: v for e, v in enumerate(curves[0])}
        study.add_trial(create_trial(
            params={PARAM: name}, distributions={PARAM: CategoricalDistribution([c["name"] for c in candidates])},
            value=None if state == TrialState.PRUNED else float(np.mean(candidate_values)),
            intermediate_values=steps, user_attrs=attrs, state=state))
    study.set_user_attr(SPLITS, {"counts": {"search_train": {"a": 10, "b": 10}, "search_val": {"a": 100, "b": 100},
                                            "pool": {"a": 70, "b": 70}, "test": {"a": 30, "b": 30}}})
    study.set_user_attr(CANDIDATES, candidates[: len(values)])
    study.set_user_attr(LAYER_PARAMS, layers)
    if tied is not None:
        study.set_user_attr(TIED_WITH_WINNER, tied)
    if finals:
        best = study.best_trial
        final = new_final(best.params[PARAM], best.number)
        for seed, accuracy in enumerate(finals):
            add_final_run(final, seed, accuracy, 0.9, 1.0, "val")
        final["artifact_id"] = "none"
        study.set_user_attr(FINAL, final)
    study.set_user_attr(CONFIG, config.identity())
    return study


# Block-wise, 3 paired repeats: block-03 wins (0.673); block-01 differs from it by -0.005, -0.005, +0.005
# and block-05 by -0.01, +0.01, -0.01 (not significantly worse); the others are clearly worse.
BLOCK = [[0.665, 0.675, 0.675], [0.60, 0.62, 0.60], [0.67, 0.68, 0.67], [0.62, 0.63, 0.61], [0.66, 0.69, 0.66],
         [0.55, 0.57, 0.56]]
SEEDS = {  # final test accuracy per seed 0, 1, 2
    "head": [0.60, 0.62, 0.61],
    "full": [0.70, 0.69, 0.72],
    "block": [0.705, 0.715, 0.71],  # better than Baseline I (p < 0.001), not different from II
    "layer": [0.70, 0.725, 0.705],  # the same mean as block at 3 decimals: both bold
    "top3": [0.58, 0.605, 0.59],  # worse than both baselines
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('made')}/made.db"
    storage = optuna.storages.RDBStorage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _study(storage, "head", [[0.60, 0.615, 0.59]], SEEDS["head"])
    _study(storage, "full", [[0.69, 0.70, 0.68]], SEEDS["full"])
    tied = tied_with_winner(dict(zip(_block_names(), BLOCK)), n_images=200, alpha=0.05)
    _study(storage, "block", BLOCK, SEEDS["block"], tied=tied, pruned=(_block_names()[5],))
    rng = np.random.default_rng(1)
    layer_values = [[round(float(v), 3)] for v in rng.permutation(np.linspace(0.55, 0.70, 52))]
    _study(storage, "layer", layer_values, SEEDS["layer"], repeats=False)
    _study(storage, "topk", [[0.58, 0.60, 0.59]], SEEDS["top3"])
    return {"url": url, "records": load_records(url), "tied": tied}


def _block_names():
    candidates = STRATEGIES["block"].generate(_layers(), _Options())
    return [c.name for c in candidates][: len(BLOCK)]


def _record(made, key):
    return next(r for r in made["records"] if r.key == key)


def test_the_tied_set_is_the_winner_and_the_not_significantly_worse(made):
    names = _block_names()
    assert made["tied"] == [names[2], names[0], names[4]]  # block-03, then block-01 and block-05 by their mean gap
    block = _record(made, "block")
    assert block.tied() == made["tied"] and block.winner() == names[2]


def test_the_decision_in_words(made):
    block = _record(made, "block")
    summary = summarize(BLOCK[2])
    text = decision_text(block, made["records"])
    # First what to do (study.report.choice_text; these trials record no parameter counts), then why.
    assert text.startswith("Fine-tune block-03: block-01 and block-05 are statistically tied with it; it has the "
                           "best mean and is the cheapest of them. Head-only (Baseline I) is significantly worse "
                           "(p=0.000832) on the same 3 seeds. block-03 wins:")
    assert text.split(" seeds. ", 1)[1].startswith(
        f"block-03 wins: validation accuracy 0.673 ± {summary.standard_error:.3f} (mean ± standard error over 3 "
        "repeats). block-01 and block-05 are statistically tied with it (not significantly worse: one-sided paired "
        "t-test over the 3 repeats, noise pooled over the candidates, alpha 0.05 overall, Bonferroni over the "
        "comparisons with the winner), so the data do not single out one best candidate; "
        "the other 3 are significantly worse. 1 of these was stopped early (pruned).")
    std = float(np.std(SEEDS["block"], ddof=1))
    assert f"Final stage: block-03 retrained on the 70% pool, test accuracy 0.710 ± {std:.3f} (mean ± std over 3 seeds)." in text
    assert ("Against the baselines on the same 3 seeds (two-sided paired t-test over seeds, alpha 0.05): significantly "
            "better than Baseline I (difference +0.100, p = 0.000832); not significantly different from Baseline II") in text
    # An older study (one value per candidate, no tied set stored): binomial error, the z-test, computed tied set.
    layer = _record(made, "layer")
    text = decision_text(layer)
    assert "wins: validation accuracy 0.700 ± 0.032 (one repeat; binomial standard error on 200 images)" in text
    assert ("one-sided two-proportion z-test on the 200 images, alpha 0.05 overall, Bonferroni over the comparisons "
            "with the winner") in text
    assert "Against the baselines" not in text  # no other records given
    # One candidate: nothing to compare; the sentence says so.
    head = _record(made, "head")
    assert decision_text(head).startswith("Fine-tune head: it is the only candidate. head, the only candidate: "
                                          "validation accuracy 0.602 ± 0.007 (mean ± "
                                          "standard error over 3 repeats); there is nothing to compare it with.")


def test_the_decision_imports_without_plotly():
    code = ("import sys; from study.report import decision_text, record_of; "
            "assert 'plotly' not in sys.modules, 'plotly imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "ok", done.stderr


def test_table_one_std_ties_and_significance(made):
    page = table_html(made["records"])
    rows, bold = _table(page), _bold(page)
    model = "mobilenet_v2 (synthetic)"
    std = {k: float(np.std(v, ddof=1)) for k, v in SEEDS.items()}
    assert rows[model] == {"Baseline I": f"0.610 ± {std['head']:.3f}", "Baseline II": f"0.703 ± {std['full']:.3f}",
                           "LW": f"0.710 ± {std['layer']:.3f}", "BW": f"0.710 ± {std['block']:.3f}",
                           "BWT3": f"0.592 ± {std['top3']:.3f}"}
    # Equal best values (0.710 at 3 decimals) are both bold, in the model row and the Mean row.
    assert bold[model] == ["LW", "BW"] and bold["Mean"] == ["LW", "BW"]
    # Significance against the baselines, paired over the 3 seeds.
    markers = dict(re.findall(r"<td[^>]*>(?:<b>)?([0-9.]+ ± [0-9.]+)<sup class='sig'>(.*?)</sup>", page))
    # ... and against the block-wise winner (BW) on the same seeds.
    assert markers == {f"0.610 ± {std['head']:.3f}": "−II −BW", f"0.703 ± {std['full']:.3f}": "+I",
                       f"0.710 ± {std['block']:.3f}": "+I", f"0.710 ± {std['layer']:.3f}": "+I",
                       f"0.592 ± {std['top3']:.3f}": "−I −II −BW"}
    assert ("+I / −I: significantly better / worse than Baseline I on the same 3 seeds, +II / −II: than Baseline II, "
            "+BW / −BW: than the block-wise winner (two-sided paired t-test over seeds, alpha 0.05 per comparison") in page
    assert "mean ± std over 3 seed(s) (sample std, ddof=1" in page


def test_table_one_and_the_final_figure_use_the_studies_alpha(made):
    """One alpha everywhere a significance is shown: a study run with --race-alpha 0.2 is marked at 0.2 in
    Table I and in the final figure, and both say so (they used a fixed 0.05)."""
    records = [dataclasses.replace(r, config=dataclasses.replace(r.config, race_alpha=0.2)) for r in made["records"]]
    comparisons = [c for r in records for c in baseline_comparisons(r, records)]
    assert comparisons and {c.alpha for c in comparisons} == {0.2}
    assert "alpha 0.2 per comparison: --race-alpha of the study" in " ".join(table_notes(records))
    figure = next(s.figure for s in figure_sections(records) if s.id == "test-accuracy-per-strategy")
    assert "alpha 0.2)" in figure.layout.title.text.replace("<br>", " ")


def test_table_one_as_csv_and_latex(made):
    lines = list(csv.DictReader(io.StringIO(table_csv(made["records"]))))
    cells = {(line["row"], line["strategy"]): line for line in lines}
    block = cells[("mobilenet_v2 (synthetic)", "BW")]
    assert float(block["value"]) == pytest.approx(np.mean(SEEDS["block"]))
    assert float(block["std"]) == pytest.approx(np.std(SEEDS["block"], ddof=1))
    assert block["seeds"] == "3" and block["candidate"] == "block-03" and block["best"] == "1"
    assert block["vs_baseline_I"] == "better" and float(block["p_baseline_I"]) < 0.001
    assert block["vs_baseline_II"] == "not significant" and block["vs_baseline_BW"] == ""  # not against itself
    assert cells[("mobilenet_v2 (synthetic)", "LW")]["vs_baseline_BW"] == "not significant"
    assert cells[("mobilenet_v2 (synthetic)", "LW")]["best"] == "1"  # the tie
    assert cells[("mobilenet_v2 (synthetic)", "BWT3")]["vs_baseline_II"] == "worse"
    assert cells[("mobilenet_v2 (synthetic)", "Baseline I")]["vs_baseline_I"] == ""  # not against itself
    assert cells[("Mean", "BW")]["statistic"] == "mean across models"
    assert ("Variance", "BW") not in cells  # undefined with one model
    latex = table_latex(made["records"])
    assert "\\begin{tabular}{lccccc}" in latex and "\\toprule" in latex and "mobilenet\\_v2 (synthetic)" in latex
    std = float(np.std(SEEDS["block"], ddof=1))
    assert f"$\\mathbf{{0.710 \\pm {std:.3f}}}^{{+\\mathrm{{I}}}}$" in latex
    assert f"$0.592 \\pm {float(np.std(SEEDS['top3'], ddof=1)):.3f}^{{-\\mathrm{{I}}-\\mathrm{{II}}-\\mathrm{{BW}}}}$" in latex
    assert "\\caption{Each cell:" in latex


def test_command_line_formats_go_to_stdout_or_a_file(made, tmp_path, capsys):
    assert main(["--storage", made["url"], "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("row,strategy,statistic,value,std,seeds,candidate,best,") and out.err == ""
    assert main(["--storage", made["url"], "--format", "latex", "--output", str(tmp_path / "t.tex")]) == 0
    assert capsys.readouterr().out.strip() == f"table: {tmp_path / 't.tex'}"
    assert (tmp_path / "t.tex").read_text().startswith("% Table I")


def test_an_empty_table_says_why(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/empty.db"
    _study(optuna.storages.RDBStorage(url), "block", BLOCK[:3], finals=None)
    page = tmp_path / "r.html"
    assert main(["--storage", url, "--output", str(page)]) == 0
    text = page.read_text()
    assert "<table class='table1'>" not in text
    assert ("Table I is empty: no study has a final stage yet (it runs after a complete search unless --skip-final "
            "was given; run the same python -m study.run command again to finish). synthetic-mobilenet_v2-block: "
            "search done, no final stage.") in text
    capsys.readouterr()
    assert main(["--storage", url, "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and out.err.startswith("note: Table I is empty")
    assert main(["--storage", url, "--format", "latex"]) == 0
    assert capsys.readouterr().out.startswith("% Table I is empty")



@pytest.mark.parametrize("args, message", [
    (["--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--study"], "argument --study: expected one argument"),
])
def test_bad_arguments_are_one_line_like_the_run_command(tmp_path, capsys, args, message):
    assert main([*args, "--output", str(tmp_path / "r.html")]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert out.out == "" and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.err
    assert lines[0].endswith("(see --help)") and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("fmt", ["html", "csv", "latex"])
@pytest.mark.parametrize("content", ["no study", "a study of another tool", "no finished trial"])
def test_a_storage_with_nothing_to_report_is_an_error_in_every_format(tmp_path, capsys, fmt, content):
    url = f"sqlite:///{tmp_path}/s.db"
    storage = optuna.storages.RDBStorage(url)  # Optuna's tables
    if content == "a study of another tool":
        optuna.create_study(study_name="plain", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    if content == "no finished trial":
        _study(storage, "block", [], finals=None)
    storage.engine.dispose()
    assert main(["--storage", url, "--format", fmt, "--output", str(tmp_path / "out")]) == 2
    out = capsys.readouterr()
    expected = ("no trial of synthetic-mobilenet_v2-block has finished yet" if content == "no finished trial"
                else "holds no study made by python -m study.run")
    lines = out.err.strip().splitlines()
    assert out.out == "" and len(lines) == 1 and lines[0].startswith(f"error: --storage {url}: {expected}"), out.err
    assert not (tmp_path / "out").exists()

def _points(fig):
    return sum(len([x for x in trace.x if x is not None]) for trace in fig.data if trace.x is not None)


def test_no_figure_has_a_single_bar_or_curve(protocol_storage, made):
    for records in (load_records(protocol_storage["url"]), made["records"]):
        sections = figure_sections(records)
        for section in sections:
            if section.figure is None:
                assert section.why_not
                continue
            if section.id == "validation-accuracy-per-candidate":
                assert _points(section.figure) >= 2, section.title
            if section.id == "learning-curves":
                assert len([t for t in section.figure.data if t.y is not None]) >= 2, section.title
            if section.id == "test-accuracy-per-strategy":
                assert len(section.figure.layout.xaxis.tickvals) >= 2
        skipped = {s.title for s in sections if s.figure is None}
        for key in ("head", "full", "top3"):
            name = next(r.name for r in records if r.key == key)
            assert f"{name}: validation accuracy per candidate" in skipped
    titles = [title for title, _ in figures(load_records(protocol_storage["url"]))]
    assert "synthetic-tiny-top3: validation accuracy per candidate" not in titles


def test_the_candidates_figure_marks_the_winner_and_the_tied_set(made):
    block = _record(made, "block")
    fig = next(s.figure for s in figure_sections(made["records"])
               if s.title == f"{block.name}: validation accuracy per candidate")
    traces = {trace.name.split(":")[0].split("<br>")[0]: trace for trace in fig.data}
    assert list(traces["winner"].x) == ["block-03"]
    assert traces["tied with the winner"].name == "tied with the winner<br>(not significantly worse)"
    assert list(traces["tied with the winner"].x) == ["block-01", "block-05"]
    assert list(traces["significantly worse"].x) == ["block-02", "block-04"]
    assert list(traces["stopped early (pruned)"].x) == ["block-06"]
    # Mean and the stored 95% interval per candidate; the axis zoomed to the intervals (not 0..1).
    interval = summarize(BLOCK[2]).interval_95
    assert traces["winner"].error_y.array[0] == pytest.approx(interval[1] - np.mean(BLOCK[2]))
    low, high = fig.layout.yaxis.range
    assert 0.45 < low < 0.55 and 0.70 < high < 0.75
    assert {"Baseline I 0.602", "Baseline II 0.690"} <= {t.name for t in fig.data}
    # One label style: ids, the layer-wise ones with their layer.
    layer = next(s.figure for s in figure_sections(made["records"]) if s.title.endswith("-layer: validation accuracy per candidate"))
    assert "layer-052 Conv_1" in layer.layout.xaxis.categoryarray


def test_the_final_figure_shows_mean_std_seeds_and_significance(made):
    fig = next(s.figure for s in figure_sections(made["records"]) if s.id == "test-accuracy-per-strategy")
    assert list(fig.layout.xaxis.ticktext) == ["Baseline I", "Baseline II", "LW", "BW", "BWT3"]
    best = next(t for t in fig.data if t.name == "best mean")
    assert list(best.x) == [2, 3]  # LW and BW: equal at 3 decimals, both marked (as Table I bolds both)
    seeds = next(t for t in fig.data if t.name == "one seed")
    assert len(seeds.y) == 15
    assert {a.text for a in fig.layout.annotations} == {"−II −BW", "+I", "−I −II −BW"}  # Table I's markers
    low, high = fig.layout.yaxis.range
    assert low > 0.5 and high < 0.8


def test_figures_as_png_and_svg(made, tmp_path):
    folder = OUTPUT / "figures"  # for a human to look at (git-ignored)
    shutil.rmtree(folder, ignore_errors=True)
    paths, note = export_figures(figures(made["records"]), folder)
    stems = {p.stem for p in paths}
    assert "mobilenet_v2-on-synthetic-final-test-accuracy-per-strategy" in stems
    assert "synthetic-mobilenet_v2-block-validation-accuracy-per-candidate" in stems
    assert all(p.with_suffix(".json").exists() for p in paths)
    if note is not None:  # no browser kaleido could use
        assert not has_browser(), note  # (fails with CI=true when none is installed)
        pytest.skip("no Chrome/Chromium: PNG and SVG not rendered (HTML and plotly JSON written instead)")
    for stem in stems:
        assert (folder / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (folder / f"{stem}.svg").read_bytes()[:500]


def test_without_a_browser_figures_are_html_and_json(made, tmp_path, capsys, monkeypatch):
    import plotly.io

    def no_browser(*args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")

    monkeypatch.setattr(plotly.io, "write_images", no_browser)
    assert main(["--storage", made["url"], "--output", str(tmp_path / "r.html"), "--figures", str(tmp_path / "f")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: figures saved as HTML and plotly JSON only; PNG and SVG need")
    files = {p.suffix for p in (tmp_path / "f").iterdir()}
    assert files == {".html", ".json", ".js"} and (tmp_path / "f" / "plotly.min.js").exists()


def test_dashboard_pngs_are_named_by_content_and_uploaded_once(made, tmp_path, capsys):
    import optuna_dashboard

    from study.report import publish

    db = Path(made["url"].removeprefix("sqlite:///"))
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    with contextlib.closing(sqlite3.connect(db)) as source, contextlib.closing(sqlite3.connect(tmp_path / "copy.db")) as copy:
        source.backup(copy)  # through SQLite: see _content
    artifacts = str(tmp_path / "artifacts")

    def studies():
        return [optuna.load_study(study_name=s.study_name, storage=url) for s in optuna.get_all_study_summaries(url)]

    def pngs(study):
        return sorted(a.filename for a in optuna.artifacts.get_all_artifact_meta(study) if a.filename.endswith(".png"))

    publish(studies(), artifacts)
    block = next(s for s in studies() if s.study_name.endswith("-block"))
    note = optuna_dashboard.get_note(block)
    assert "**Search:** block-03 wins: validation accuracy 0.673" in note
    assert ("**Against the baselines:** On the same 3 seeds (two-sided paired t-test over seeds, alpha 0.05): "
            "significantly better than Baseline I") in note
    first = pngs(block)
    if not first:  # no browser kaleido could use: the plots only, and one line says so
        assert "PNG and SVG need" in capsys.readouterr().err
        assert not has_browser()  # (fails with CI=true when none is installed)
        return
    assert [re.sub(r"-[0-9a-f]{8}\.png$", "", f) for f in first] == [
        "learning-curves", "parameters-per-layer", "test-accuracy-per-strategy", "validation-accuracy-per-candidate"]
    headline = next(f for f in first if f.startswith("test-accuracy-per-strategy"))
    head = next(s for s in studies() if s.study_name.endswith("-head"))
    assert headline in pngs(head)  # the headline figure goes to every study of the model
    assert not [f for f in pngs(head) if f.startswith(("validation-accuracy", "learning-curves"))]  # one candidate
    publish(studies(), artifacts)  # nothing changed: nothing uploaded
    assert pngs(block) == first
    # Another seed of Baseline I changes the headline figure: a new file next to the old one.
    final = head.user_attrs[FINAL]
    head.set_user_attr(FINAL, add_final_run(final, 3, 0.64, 0.9, 1.0, "val"))
    publish(studies(), artifacts)
    added = sorted(set(pngs(block)) - set(first))
    assert len(added) == 1 and added[0].startswith("test-accuracy-per-strategy-") and headline in pngs(block)
