"""Whether the tests that need a browser (headless Chromium: optuna-dashboard's pages, kaleido's
PNGs) or a PostgreSQL server can run here, decided in one place.

A missing browser or server skips those tests, so the README's `python -m pytest -q` passes on a
fresh machine; with CI=true (.ci/run, which installs Chromium and starts PostgreSQL) it fails them.
"""

from __future__ import annotations

import os
import shutil

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL = "apt-get install chromium; .ci/run installs it"


def find_browser() -> str | None:
    """The path of a Chrome or Chromium: BROWSER_PATH, else the first on PATH (where kaleido's
    choreographer looks too), or None.

    Example:
        >>> find_browser() is None or os.path.isabs(find_browser())
        True
    """
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ci_requires_everything() -> bool:
    """CI=true (as .ci/run runs): what the suite needs must be there, nothing is skipped."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require_browser() -> str:
    """The browser's path; else skip the calling test, or fail it under CI=true."""
    found = find_browser()
    if found is None:
        message = f"no Chrome or Chromium on PATH ({INSTALL})"
        if ci_requires_everything():
            pytest.fail(f"CI=true needs a browser: {message}", pytrace=False)
        pytest.skip(message)
    return found


def has_browser() -> bool:
    """Whether kaleido can render PNG/SVG here; with CI=true a missing browser fails the calling test."""
    if ci_requires_everything():
        require_browser()  # fails the test, with its message, when there is none
    return find_browser() is not None


def postgres_url() -> str:
    """STUDY_TEST_POSTGRES_URL; else skip the calling test, or fail it under CI=true."""
    url = os.environ.get("STUDY_TEST_POSTGRES_URL")
    if not url:
        if ci_requires_everything():
            pytest.fail("STUDY_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it")
        pytest.skip("set STUDY_TEST_POSTGRES_URL (see .ci/postgres) to run against PostgreSQL")
    return url
