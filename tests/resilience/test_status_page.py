"""The live status page in a real headless Chromium, against the daemon and the fake.

Debian's ``chromium`` and ``chromedriver`` are driven by Selenium, told
exactly where both are so Selenium Manager never downloads anything. Without
them the test is skipped, unless ``CI=true`` or ``OUTDIAL_REQUIRE_BROWSER=1``,
where a missing browser fails it. ``OUTDIAL_UPDATE_SCREENSHOT=1`` saves the
page as ``docs/status-page.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from daemon_harness import daemon_for, ready_config, sqlite
from listener_harness import USER

from outdial.config import ObserveConfig
from outdial.fake import FakePlatform, Outcome
from outdial.fake.script import CallTiming

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
NUMBERS = ["+441212345601", "+441212345602"]
# Long enough talk for the page (polling every second) to see each call in flight.
TIMING = CallTiming(ring=(0.05, 0.05), talk=(2.5, 2.5), wrapup=0.02, dial=0.01)


def _browser_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("OUTDIAL_REQUIRE_BROWSER") == "1"


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    why = f"no browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
    if _browser_required():
        pytest.fail(why + "; required here (CI=true or OUTDIAL_REQUIRE_BROWSER=1)")
    pytest.skip(why)


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _rows(driver: object, table: str) -> list[str]:
    """The first cell of each row of ``table``, read in one go in the page.

    The page redraws itself every second: elements found one by one can be
    replaced between the find and the read (stale), so the texts are read by
    one script, atomically.
    """
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(driver, WebDriver)
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(td => !td.classList.contains('empty'))"
        ".map(td => td.textContent.trim());",
        f"#{table} tbody tr td:first-child",
    )
    return [str(t) for t in texts]


def _text(driver: object, element_id: str) -> str:
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(driver, WebDriver)
    text = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        element_id,
    )
    return str(text)


def _one_call(driver: object, after: str | None = None) -> list[str] | None:
    """The one call in flight, once there is exactly one (and ``after`` is among the
    outcomes, with another call in flight since)."""
    if after is not None and after not in _rows(driver, "outcomes"):
        return None
    calls = _rows(driver, "calls")
    return calls if len(calls) == 1 and calls[0] != after else None


def watch_page(url: str, profile: Path, screenshot: Path) -> tuple[str, str]:
    """Open the page; see a call in flight, then ended while the next is in flight."""
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(profile) as opened:
        assert isinstance(opened, WebDriver)
        driver = opened
        driver.get(url)
        wait = WebDriverWait(driver, 20, poll_frequency=0.1)
        wait.until(lambda d: _text(d, "verdict").strip() == "ready")
        driver.execute_script("window.notReloaded = true")
        calls = wait.until(lambda d: _one_call(d))
        assert calls is not None
        [first] = calls
        # The first call ends: it moves to the outcomes, and the second is dialed.
        calls = wait.until(lambda d: _one_call(d, after=first))
        assert calls is not None
        [second] = calls
        assert driver.execute_script("return window.notReloaded") is True
        assert USER in _text(driver, "agents")
        driver.save_screenshot(str(screenshot))
        return first, second


async def test_the_status_page_shows_a_dial_and_updates_when_the_call_ends(
    tmp_path: Path,
) -> None:
    _need_browser()
    async with FakePlatform([USER], timing=TIMING, seed=3) as platform:
        for number in NUMBERS:
            platform.set_outcome(number, Outcome.ANSWERED)
        config = ready_config(platform, sqlite(tmp_path)).model_copy(
            update={"observe": ObserveConfig(listen="127.0.0.1:0")}
        )
        async with daemon_for(config, contacts=[(USER, n) for n in NUMBERS]) as run:
            address = run.daemon.observatory.address
            assert address is not None
            url = f"http://{address[0]}:{address[1]}/"
            shot = tmp_path / "status-page.png"
            first, second = await anyio.to_thread.run_sync(
                watch_page, url, tmp_path / "profile", shot
            )
        placed = [c.conversation_id for c in platform.recorded.accepted_calls]
    # The page showed the first call, then (once it ended) a later one, without a reload.
    assert placed[0] == first
    assert placed.index(second) > 0
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("OUTDIAL_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
