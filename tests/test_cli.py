"""`python -m study.run --help`: every flag, with what it does and its default; and a cheap `import study`."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from study.config import StudyConfig
from study.run import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _flag(field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def test_help_lists_every_flag_with_a_description_and_one_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per flag
    text = build_parser().format_help()
    options = text.split("\noptions:\n")[1].split("\n\nexamples:")[0]
    blocks = re.split(r"\n(?=  -)", options)  # a long flag gets its description on the next line
    entries = {re.split(r"[ ,]", block.strip())[0]: " ".join(block.split()) for block in blocks}
    for field in dataclasses.fields(StudyConfig):
        flag = _flag(field)
        assert flag in entries, f"{flag} is not in --help"
        entry = entries[flag]
        assert field.metadata["help"].split("(default")[0].strip() in entry, entry  # what it does
        assert len(re.findall(r"\(default: [^)]+\)", entry)) == 1, entry  # its default, once
    assert "--no-prefix-cache" in entries and entries["--no-prefix-cache"].endswith("(default: off)")
    assert entries["--epochs"].endswith("(default: 50)") and entries["--storage"].endswith("(default: sqlite:///storage/studies.db)")
    # The examples, and what to run afterwards.
    assert "python -m study.run --dataset synthetic --weights none --image-size 32 --epochs 3" in text
    assert "optuna-dashboard sqlite:///storage/studies.db --artifact-dir storage/artifacts" in text


def test_help_is_fast_and_import_study_loads_no_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "import study\n"
        "from study import run_study\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'import study loaded TensorFlow'\n"
        "from study.run import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0\n"
        "assert 'tensorflow' not in sys.modules, '--help loaded TensorFlow'\n"
        "print('ok')\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and shown.stdout.strip() == "ok", shown.stderr[-2000:]
