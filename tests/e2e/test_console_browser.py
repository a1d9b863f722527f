"""The console in a real Chromium (Debian's), against the running pipeline (gunicorn from
the Procfile): sign in, see a quiet-hours hold, redrive a stuck message and watch its
timeline change; a viewer cannot act, and a form without its CSRF token is refused; a
password change ends every session of the user, another browser's included.

Skips, saying why, only where no Chromium and chromedriver are installed; under CI
(``CI=true``) a missing browser fails instead (``scripts/ensure_browser`` installs one).
With ``SCREENSHOT_DIR`` set, the overview and a timeline are saved there (the README's).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import update

from app.infra.db import Database
from app.models import Message
from tests.factories import make_tenant_ctx
from tests.support.console import csrf_of, make_user
from tests.support.processes import Pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        pytest.fail(
            "CI needs Chromium and chromedriver: scripts/ensure_browser installs them",
            pytrace=False,
        )
    pytest.skip(
        "no Chromium/chromedriver here (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: WebDriver, base: str, username: str, password: str) -> None:
    driver.get(f"{base}/console/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "whoami")))


def click_through(driver: WebDriver, by: str, value: str) -> None:
    """Click a control that loads a new page, and wait until the old page is gone. Chrome may
    answer a lookup made while the document is being replaced with "Node with given id does
    not belong to the document", an error no wait retries by itself (seen once in CI)."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, value).click()
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(ec.staleness_of(old))


def shoot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def quiet_now() -> str:
    """Quiet hours around now in New York (where +1 202 numbers are)."""
    local = datetime.now(ZoneInfo("America/New_York"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


def send(pipeline: Pipeline, headers: dict[str, str], **body: object) -> dict[str, object]:
    r = requests.post(f"{pipeline.base_url}/v1/messages", json=body, headers=headers, timeout=10)
    assert r.status_code == 202, r.text
    data: dict[str, object] = r.json()
    return data


def test_an_operator_sees_a_hold_and_redrives_a_stuck_message(
    pipeline: Pipeline, db: Database, browser: WebDriver
) -> None:
    base = pipeline.base_url
    ctx = make_tenant_ctx(db, quiet_hours=quiet_now())
    held = send(pipeline, ctx.headers, to="+12025550181", body="held by quiet hours")
    assert (held["status"], held["status_reason"]) == ("scheduled", "quiet_hours")
    stuck = send(
        pipeline,
        ctx.headers,
        to="+12025550182",
        body="stuck",
        send_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),  # never sent by itself
    )
    with db.session() as s:  # handed to a provider an hour ago, its answer never recorded
        s.execute(
            update(Message)
            .where(Message.id == stuck["id"])
            .values(
                status="dispatched",
                not_before=None,
                next_attempt_at=None,
                updated_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    username, password = make_user(db, "operator")
    sign_in(browser, base, username, password)

    browser.get(f"{base}/console/?tenant={ctx.tenant_id}")
    held_table = browser.find_element(By.ID, "held").text
    assert "quiet hours" in held_table and ctx.tenant_id in held_table
    shoot(browser, "console-overview.png")

    browser.get(f"{base}/console/messages/{stuck['id']}")
    before = browser.find_elements(By.CSS_SELECTOR, "#timeline li")
    browser.find_element(By.ID, "action-redrive").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "dry-run")))
    assert "dry run" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "done")))
    browser.find_element(By.ID, "back").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "timeline")))
    after = browser.find_elements(By.CSS_SELECTOR, "#timeline li")
    assert len(after) > len(before)
    assert "needs_review" in browser.find_element(By.ID, "timeline").text
    shoot(browser, "console-timeline.png")
    assert "+1202555018" not in browser.page_source  # an operator sees numbers masked


def test_a_viewer_has_no_redrive_button_and_a_forged_post_is_refused(
    pipeline: Pipeline, db: Database, browser: WebDriver
) -> None:
    base = pipeline.base_url
    ctx = make_tenant_ctx(db)
    message = send(
        pipeline,
        ctx.headers,
        to="+12025550183",
        body="x",
        send_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
    )
    username, password = make_user(db, "viewer")
    sign_in(browser, base, username, password)
    browser.get(f"{base}/console/messages/{message['id']}")
    assert browser.find_elements(By.ID, "timeline")
    assert not browser.find_elements(By.ID, "action-redrive")

    # The viewer's own session, its valid CSRF token, and a POST the page never offered.
    session = requests.Session()
    for cookie in browser.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
    token = csrf_of(browser.page_source)
    forged = session.post(
        f"{base}/console/actions/redrive",
        data={"ids": message["id"], "confirm": "yes", "csrf_token": token},
        timeout=10,
    )
    assert forged.status_code == 403
    without_token = session.post(
        f"{base}/console/actions/redrive", data={"ids": message["id"]}, timeout=10
    )
    assert without_token.status_code == 400
    with db.session() as s:
        assert s.get(Message, message["id"]).status == "scheduled"  # type: ignore[union-attr]


def test_a_password_change_in_the_browser_ends_every_session(
    pipeline: Pipeline, db: Database, browser: WebDriver
) -> None:
    base = pipeline.base_url
    username, password = make_user(db, "operator")
    sign_in(browser, base, username, password)
    # Another browser of the same user: its cookie, copied while the session lives.
    other = requests.Session()
    for cookie in browser.get_cookies():
        other.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
    assert other.get(f"{base}/console/", timeout=10, allow_redirects=False).status_code == 200

    browser.find_element(By.LINK_TEXT, "Password").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "change-password")))
    shoot(browser, "console-password.png")
    new = "a brand new long password"
    browser.find_element(By.ID, "current").send_keys(password)
    browser.find_element(By.ID, "new").send_keys(new)
    browser.find_element(By.ID, "again").send_keys(new)
    browser.find_element(By.ID, "change-password").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "sign-in")))
    assert "Password changed" in browser.page_source

    gone = other.get(f"{base}/console/", timeout=10, allow_redirects=False)
    assert gone.status_code == 302 and "/console/login" in gone.headers["Location"]
    sign_in(browser, base, username, new)
    assert username in browser.find_element(By.ID, "whoami").text


def test_an_operator_follows_a_campaign_and_pauses_it_in_the_browser(
    pipeline: Pipeline, db: Database, browser: WebDriver
) -> None:
    base = pipeline.base_url
    ctx = make_tenant_ctx(db)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    rows = [{"to": f"+1202555{n:04d}"} for n in range(3400, 3420)]
    r = requests.post(
        f"{base}/v1/campaigns",
        json={"name": "Tomorrow's reminders", "body": "See you", "send_at": tomorrow,
              "recipients": rows},
        headers=ctx.headers,
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 202, r.text
    campaign_id = r.json()["id"]
    url = f"{base}/v1/campaigns/{campaign_id}"
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while requests.get(url, headers=ctx.headers, timeout=10).json()["status"] != "completed":
        assert datetime.now(UTC) < deadline, pipeline.logs()
        time.sleep(0.2)
    username, password = make_user(db, "operator")
    sign_in(browser, base, username, password)
    browser.find_element(By.LINK_TEXT, "Campaigns").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "campaigns")))
    browser.find_element(By.LINK_TEXT, campaign_id).click()
    status = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "status")))
    assert status.text == "completed"
    assert "20" in browser.find_element(By.ID, "recipients").text
    click_through(browser, By.ID, "campaign-pause")
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        ec.text_to_be_present_in_element((By.ID, "status"), "paused")
    )
    assert "campaign paused 20" in browser.find_element(By.ID, "messages").text
    assert requests.get(url, headers=ctx.headers, timeout=10).json()["held_by"] == {"paused": 20}
