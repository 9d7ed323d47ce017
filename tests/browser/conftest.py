"""Browser tests: Playwright for Python driving the system's Chromium (never a downloaded one).

Off CI they skip, loudly, when Chromium or Playwright is missing; under CI=true they must run.
"""

import os
import shutil
import warnings
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MEDFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def chromium(monkeypatch):
    """Launch the system Chromium for one test.

    Playwright's sync API keeps an asyncio loop running in this thread, which Django's ORM takes
    for async code: the test's own database calls are allowed explicitly, and the browser is
    closed at the end of the test so that no other test runs beside a live loop.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    missing = _missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"BROWSER TESTS CANNOT RUN ON CI: {missing}")
        message = f"BROWSER TESTS SKIPPED: {missing}"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shots():
    """Return a function saving a full-page screenshot under test-output/browser/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
