"""Tests that need a browser skip without one, and fail without one under CI=true (tests/browser.py).

The browser's absence is simulated: PATH holds no chromium (or only a stand-in script), and the
`browser` fixture of tests/conftest.py runs in a pytest of its own (pytester).
"""

import os
import sys
from pathlib import Path

import pytest
from browser import find_browser, require_browser

CONFTEST = Path(__file__).with_name("conftest.py")
PROBE = """
def test_needs_a_browser(browser):
    assert browser.endswith("chromium")
"""


@pytest.fixture
def no_browser_on_path(monkeypatch, tmp_path):
    """PATH with Python only, and no BROWSER_PATH: no chromium, chrome or google-chrome."""
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    assert find_browser() is None
    return bare


@pytest.mark.parametrize("ci", [None, "true"])
def test_a_missing_browser_skips_and_ci_fails(pytester, monkeypatch, no_browser_on_path, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rsf")
    if ci is None:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*no Chrome or Chromium on PATH*"])
    else:
        result.assert_outcomes(errors=1)  # failed in the fixture: the run fails
        assert result.ret != 0
        result.stdout.fnmatch_lines(["*CI=true needs a browser*"])


def test_a_browser_on_path_is_used(pytester, monkeypatch, no_browser_on_path):
    monkeypatch.setenv("CI", "true")
    stand_in = no_browser_on_path / "chromium"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_probe=PROBE)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_require_browser_outside_a_fixture(monkeypatch, no_browser_on_path):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no Chrome or Chromium"):
        require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true needs a browser"):
        require_browser()
