"""The operators' console in a real browser (Debian's headless Chromium, driven by Playwright).

One real service for the module: the boat clip as a demo camera, a camera-like copy of it
(no B-frames, so its live view is passed through) and the crowd hall in another township,
with the real detector and a SQLite file. Incidents come from the real pipeline on the
real footage. A screenshot of each page is saved under artifacts/console/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridwatch.web.auth import CSRF_HEADER
from tests.support.console import (
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    ConsoleServer,
    boat_camera,
    console_config,
    hall_camera,
    passthrough_camera,
    start_console,
    unreachable_camera,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"Debian chromium is not installed at {CHROMIUM}"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
SCREEN = {"width": 1920, "height": 1080}
# Records when each incident row first appears in the page, on the page's own clock
# (timeOrigin + now is Unix time in milliseconds on this machine).
ROW_CLOCK = """
window.__rowsSeen = {};
new MutationObserver(() => {
  for (const row of document.querySelectorAll('tr.row[data-id]')) {
    if (!(row.dataset.id in window.__rowsSeen)) {
      window.__rowsSeen[row.dataset.id] = performance.timeOrigin + performance.now();
    }
  }
}).observe(document, {subtree: true, childList: true});
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, footage_dir: Path,
            models_dir: Path) -> Iterator[ConsoleServer]:
    tmp = tmp_path_factory.mktemp("console")
    config = console_config(tmp, models_dir, [boat_camera(), passthrough_camera(footage_dir),
                                              hall_camera(), unreachable_camera()],
                            incident_cooldown_s=3)
    with pytest.MonkeyPatch.context() as monkeypatch:
        server = start_console(config, monkeypatch)
    try:
        server.add_user("op-east", "operator", "twp-east-bank")
        server.add_user("viewer-east", "viewer", "twp-east-bank")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=SCREEN)
    context.add_init_script(ROW_CLOCK)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def log_in(page: Any, console: ConsoleServer, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{console.base}/")
    page.wait_for_selector("#login-form")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#top:not([hidden])")
    page.wait_for_selector("#conn.up")


def api(console: ConsoleServer, path: str, **params: Any) -> Any:
    """The API as the whole-city administrator sees it."""
    with httpx.Client(base_url=console.base) as client:
        login = client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def judge(console: ConsoleServer, incident_id: str, to: str, note: str) -> None:
    """An administrator's transition through the API (as another console would make it)."""
    with httpx.Client(base_url=console.base) as client:
        login = client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        answer = client.post(f"/api/incidents/{incident_id}/transitions",
                             json={"to": to, "note": note},
                             headers={CSRF_HEADER: login.json()["csrf_token"]})
        assert answer.status_code == 200, answer.text


def wait_for_incident(console: ConsoleServer, timeout: float = 60, **params: Any) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api(console, "/api/incidents", **params)["items"]
        if items:
            return items[0]
        time.sleep(1)
    raise AssertionError(f"no incident {params} within {timeout} s")


def test_login_refuses_a_wrong_password_then_lets_the_operator_in(page: Any,
                                                                  console: ConsoleServer):
    page.goto(f"{console.base}/")
    page.wait_for_selector("#login-form")
    shot(page, "login")
    page.fill("input[name=username]", "op-east")
    page.fill("input[name=password]", "not-the-password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-form .error-box:not([hidden])")
    assert page.inner_text("#login-form .error-box") == "Wrong username or password."

    log_in(page, console, "op-east")
    assert "op-east" in page.inner_text("#who")
    assert "East Bank Township" in page.inner_text("#who")
    page.click("#logout")
    page.wait_for_selector("#login-form")


@pytest.mark.slow
def test_boat_incident_appears_live_and_the_operator_acknowledges_and_resolves_it(
    page: Any, console: ConsoleServer,
):
    log_in(page, console, "op-east")
    page.goto(f"{console.base}/console/#/incidents")
    page.wait_for_selector("#incident-rows")
    before = set(page.eval_on_selector_all("tr.row", "rows => rows.map(r => r.dataset.id)"))
    console.start_cameras()

    row = page.wait_for_selector("tr.row[data-id]:has-text('illegal fishing')", timeout=60_000)
    incident_id = row.get_attribute("data-id")
    assert incident_id not in before
    seen_ms = page.evaluate(f"window.__rowsSeen[{incident_id!r}]")
    stored = api(console, f"/api/incidents/{incident_id}")
    committed = _unix(stored["created_at"])
    assert seen_ms / 1000 - committed < 2.0, "the new incident took over 2 s to show"
    shot(page, "incidents")

    page.click(f"tr.row[data-id='{incident_id}']")
    page.wait_for_selector(f"#incident-detail[data-id='{incident_id}']")
    page.wait_for_function(
        "() => document.querySelector('#detail-snapshot')?.naturalWidth > 0")
    assert page.is_enabled("button[data-action=acknowledged]")
    assert not page.is_enabled("button[data-action=resolved]"), "new cannot be resolved"
    shot(page, "incident_detail")

    page.fill("#action-note", "patrol boat notified")
    page.click("button[data-action=acknowledged]")
    page.wait_for_selector("#incident-detail[data-status=acknowledged]")
    page.fill("#action-note", "boat left the no-fishing water")
    page.click("button[data-action=resolved]")
    page.wait_for_selector("#incident-detail[data-status=resolved]")

    # textContent: innerText loses its line breaks while the timeline is being re-rendered.
    steps = page.eval_on_selector_all("#timeline li", "items => items.map(i => i.textContent)")
    transitions = [s for s in steps if " → " in s]
    assert re.search(r"new → acknowledged by op-east\s*patrol boat notified", transitions[0])
    assert re.search(r"acknowledged → resolved by op-east\s*boat left the no-fishing water",
                     transitions[1])
    assert page.is_enabled("button[data-action=closed]")
    assert not page.is_enabled("button[data-action=dispatched]")
    assert page.get_attribute(f"tr.row[data-id='{incident_id}']", "data-status") == "resolved"
    history = api(console, f"/api/incidents/{incident_id}")["history"]
    assert [(h["from"], h["to"], h["actor"]) for h in history] == [
        ("new", "acknowledged", "op-east"), ("acknowledged", "resolved", "op-east")]


def test_camera_wall_shows_the_scoped_cameras_online_with_fresh_pictures(
    page: Any, browser: Any, console: ConsoleServer,
):
    console.start_cameras()
    log_in(page, console, "op-east")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.tile')].length === 2 && "
        "[...document.querySelectorAll('.tile img')].every(i => i.naturalWidth > 0) && "
        "[...document.querySelectorAll('.tile .age')].every(a => /^frame /.test(a.innerText))",
        timeout=30_000)
    tiles = page.eval_on_selector_all(".tile", "ts => ts.map(t => [t.dataset.camera, "
                                      "t.dataset.state, t.querySelector('.age').innerText])")
    assert {t[0] for t in tiles} == {"river-boat", "river-pier"}
    assert all(t[1] == "online" for t in tiles), tiles
    ages = [float(re.search(r"frame (\d+) s old", t[2]).group(1)) for t in tiles]
    assert max(ages) <= 5, "pictures are a few seconds old at most"

    admin = browser.new_context(viewport=SCREEN)
    try:
        wall = admin.new_page()
        log_in(wall, console, "admin", ADMIN_PASSWORD)
        wall.wait_for_function(
            "() => [...document.querySelectorAll('.tile img')].filter("
            "i => i.naturalWidth > 0).length === 3", timeout=30_000)
        wall.wait_for_selector("#wall-feed .feed-item")
        gate = wall.wait_for_selector(".tile[data-camera=gate-cam][data-state=offline]")
        assert "refused" in gate.inner_text().lower() or "no answer" in gate.inner_text()
        assert "no picture yet" in gate.inner_text()
        shot(wall, "wall")
    finally:
        admin.close()


def test_an_open_camera_wall_keeps_its_pictures_coming_about_once_a_second(
    page: Any, console: ConsoleServer,
):
    # Nobody looking, a camera encodes a picture every 30 s (workers.preview_idle_interval_s):
    # the wall's own picture requests are what bring them at 1 s.
    console.start_cameras()
    log_in(page, console, "op-east")
    page.wait_for_function(
        "() => document.querySelector('.tile[data-camera=river-pier] img')?.naturalWidth > 0",
        timeout=30_000)
    preview = console.service.camera("river-pier").preview
    shown = "() => document.querySelector('.tile[data-camera=river-pier] img').src"
    seq, src = preview.seq, page.evaluate(shown)
    time.sleep(6)
    assert preview.seq - seq >= 3, "pictures about once a second while the wall is open"
    assert page.evaluate(shown) != src, "the tile shows the newer pictures"
    (health,) = [h for h in console.service.camera_health() if h.id == "river-pier"]
    assert health.preview.wanted is True


def test_township_operator_never_sees_another_townships_incident_in_the_console(
    page: Any, console: ConsoleServer,
):
    console.start_cameras()
    crowd = wait_for_incident(console, camera="hall-crowd")
    log_in(page, console, "op-east")
    page.goto(f"{console.base}/console/#/incidents")
    page.wait_for_selector("#list-summary:has-text('shown')")
    time.sleep(2)
    cameras = set(page.eval_on_selector_all(
        "tr.row", "rows => rows.map(r => r.children[4].innerText)"))
    assert "hall-crowd" not in cameras
    assert page.query_selector(f"tr.row[data-id='{crowd['id']}']") is None

    page.goto(f"{console.base}/console/#/incidents/{crowd['id']}")
    page.wait_for_selector("#incident-detail .error-box")
    assert "does not exist" in page.inner_text("#incident-detail .error-box")
    page.goto(f"{console.base}/console/#/live/hall-crowd")
    page.wait_for_selector(".live-main .error-box:not([hidden])")
    assert "not found" in page.inner_text(".live-main .error-box")


def test_live_view_plays_the_cameras_h264_as_sent_with_detection_boxes_drawn(
    page: Any, console: ConsoleServer,
):
    console.start_cameras()
    log_in(page, console, "op-east")
    page.goto(f"{console.base}/console/#/live/river-pier")
    page.wait_for_function("() => document.querySelector('#live-video').videoWidth > 0",
                           timeout=20_000)
    start = page.evaluate("document.querySelector('#live-video').currentTime")
    time.sleep(2)
    assert page.evaluate("document.querySelector('#live-video').currentTime") > start + 1
    assert page.evaluate("[document.querySelector('#live-video').videoWidth, "
                         "document.querySelector('#live-video').videoHeight]") == [640, 360]
    assert page.get_attribute("#live-info", "data-mode") == "passthrough"
    assert page.get_attribute("#live-info", "data-codec") == "H264"
    # The boat is in view for about half of each pass of the looping clip.
    page.wait_for_function(BOX_PIXELS, timeout=30_000)
    shot(page, "live_view")

    page.goto(f"{console.base}/console/#/wall")
    page.wait_for_selector("#camera-wall")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if api(console, "/api/console/meta")["live_sessions"] == 0:
            break
        time.sleep(0.5)
    assert api(console, "/api/console/meta")["live_sessions"] == 0, "leaving closes the view"


BOX_PIXELS = """() => {
  const canvas = document.querySelector('#live-overlay');
  if (!canvas.width) return false;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let green = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 1] > 200 && data[i] < 60 && data[i + 3] > 200) green++;
  }
  return green > 200;
}"""


def test_incident_clip_plays_in_the_detail(page: Any, console: ConsoleServer):
    console.start_cameras()
    deadline = time.monotonic() + 60
    with_clip = None
    while with_clip is None and time.monotonic() < deadline:
        items = api(console, "/api/incidents", camera="river-pier")["items"]
        with_clip = next((i for i in items if i["clip"]), None)
        time.sleep(1)
    assert with_clip is not None, "no incident of the pier camera got a clip within 60 s"
    log_in(page, console, "op-east")
    page.goto(f"{console.base}/console/#/incidents/{with_clip['id']}")
    page.wait_for_selector("button[data-evidence=clip]")
    assert page.is_visible("#detail-snapshot") and not page.is_visible("#detail-clip")
    page.click("button[data-evidence=clip]")
    page.wait_for_function(
        "() => { const v = document.querySelector('#detail-clip'); "
        "return v.readyState >= 1 && v.duration > 1 && v.videoWidth === 640; }",
        timeout=15_000)
    assert not page.is_visible("#detail-snapshot")


def test_viewer_sees_the_incident_but_cannot_act_on_it(page: Any, console: ConsoleServer):
    console.start_cameras()
    boat = wait_for_incident(console, camera="river-boat")
    log_in(page, console, "viewer-east")
    page.goto(f"{console.base}/console/#/incidents/{boat['id']}")
    page.wait_for_selector(f"#incident-detail[data-id='{boat['id']}'] #actions")
    buttons = page.eval_on_selector_all("#actions button", "bs => bs.map(b => b.disabled)")
    assert buttons and all(buttons)
    assert "you can look, not act" in page.inner_text("#actions")
    shot(page, "incident_detail_viewer")
    refused = page.evaluate("""async (id) => {
        const me = await (await fetch('/api/me')).json();
        const answer = await fetch(`/api/incidents/${id}/transitions`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
            body: JSON.stringify({to: 'acknowledged'})});
        return answer.status;
    }""", boat["id"])
    assert refused == 403


ROWS = "() => [...document.querySelectorAll('tr.row')].map(r => [r.children[1].innerText, " \
       "r.dataset.status, r.children[4].innerText])"


def test_filters_narrow_the_list_by_grid_node_kind_status_and_time(page: Any,
                                                                   console: ConsoleServer):
    console.start_cameras()
    wait_for_incident(console, camera="hall-crowd")
    wait_for_incident(console, camera="river-boat")
    log_in(page, console, "admin", ADMIN_PASSWORD)
    page.goto(f"{console.base}/console/#/incidents")
    page.wait_for_selector("tr.row")

    page.select_option("#filter-node", "twp-old-town")
    page.wait_for_function(f"() => ({ROWS})().every(r => r[2] === 'hall-crowd')")
    assert page.evaluate(ROWS), "the old town's crowd incidents are listed"
    page.select_option("#filter-node", "")
    page.select_option("#filter-kind", "illegal_fishing")
    page.check("#filter-status input[value=new]")
    page.wait_for_function(f"() => ({ROWS})().every(r => r[0] === 'illegal fishing' "
                           "&& r[1] === 'new')")
    assert page.evaluate(ROWS)
    page.click("#filters button:has-text('1 h')")
    page.wait_for_function(f"() => ({ROWS})().length > 0")
    page.fill("#filter-until", "2020-01-01T00:00")
    page.dispatch_event("#filter-until", "change")
    page.wait_for_selector("#incident-rows td:has-text('No incident matches these filters.')")


def test_reports_page_shows_the_grids_figures_and_chart(page: Any, console: ConsoleServer):
    console.start_cameras()
    boat = wait_for_incident(console, camera="river-boat", status="new")
    judge(console, boat["id"], "false_alarm", "waves, no boat")
    log_in(page, console, "admin", ADMIN_PASSWORD)
    # The cameras keep opening incidents: the page's figures lie between two API reads.
    before = api(console, "/api/reports", period="day", level="cell")["rows"]
    page.goto(f"{console.base}/console/#/reports?period=day&level=cell")
    page.wait_for_selector("#report-table table tbody tr[data-node]")
    rows = page.eval_on_selector_all(
        "#report-table tbody tr[data-node]",
        "rs => rs.map(r => [r.dataset.node, Number(r.children[2].innerText), "
        "Number(r.children[3].innerText)])")
    after = api(console, "/api/reports", period="day", level="cell")["rows"]
    assert [r[0] for r in rows] == [r["node"] for r in before] == ["cell-river-01",
                                                                    "cell-square-02"]
    for (_, opened, completed), low, high in zip(rows, before, after, strict=True):
        assert low["opened"] <= opened <= high["opened"]
        assert low["completed"] <= completed <= high["completed"]
    assert rows[0][2] >= 1, "the false alarm counts as completed"
    river = "#report-table tbody tr[data-node='cell-river-01']"
    assert int(page.inner_text(f"{river} td:nth-child(6)")) >= 1, "false alarms"
    assert page.eval_on_selector_all("#chart-rates svg rect", "rs => rs.length") >= 1
    csv = page.get_attribute("#report-csv", "href")
    assert "format=csv" in csv and "period=day" in csv
    shot(page, "reports")


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
