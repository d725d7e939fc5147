"""Triage in the invigilator console, in real headless Chromium against a real server
(SQLite, Redis as the bus): one alert feed across the candidates of both of the
invigilator's rooms, sorted by severity then time; filters by alert type; the chime and
desktop notification for critical alerts (opt-in, remembered by the browser); keyboard
shortcuts (help, next / previous, acknowledge, send a saved phrase, open the candidate,
snooze); a snooze of one candidate's alerts of one type (with a reason, in the
candidate's history; an alert raised meanwhile recorded but not pushed, then shown on
request; ended early, pushed again).

Candidate A streams a real clip through the headless client and leaves the seat: a real
``absent`` alert from real footage. The other alerts are raised through the server's own
recording path (proctor.events.Recorder: evidence screenshot of a real image, alert row,
audit chain, published on the Redis bus) from the test process, so that several types
and severities arrive within seconds (tests/alertinject.py)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from exam_client.headless import HeadlessCandidate
from tests.alertinject import AlertInjector
from tests.e2e.conftest import E2E_RULES, chromium_args, console_login
from tests.mediatools import center_focus_absence
from tests.serverproc import REDIS_URL, redis_available, seed, served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

# Counts the chime's tones and the desktop notifications the page really makes, and notes
# the alerts the console socket pushes (the browser's own objects still do the work).
INSTRUMENT = """
window.__tones = 0;
window.__notes = [];
window.__pushed = [];
const WS = window.WebSocket;
window.WebSocket = class extends WS {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      try {
        const msg = JSON.parse(event.data);
        if (msg.type === "alert") window.__pushed.push(String(msg.alert.id));
      } catch {}
    });
  }
};
const Ctx = window.AudioContext;
if (Ctx) {
  const create = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () {
    const osc = create.call(this);
    const start = osc.start.bind(osc);
    osc.start = (...args) => { window.__tones += 1; return start(...args); };
    return osc;
  };
}
const N = window.Notification;
if (N) {
  class Recorded extends N {
    constructor(title, options) { super(title, options); window.__notes.push(title); }
  }
  Object.defineProperty(Recorded, "permission", { get: () => N.permission });
  Recorded.requestPermission = (...a) => N.requestPermission(...a);
  window.Notification = Recorded;
}
"""


@pytest.fixture(scope="module")
def triage_server(models_dir: Path, tmp_path_factory):
    """Four candidates in two rooms of two; invigilator1 watches both."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1 is required in CI")
        pytest.skip("Redis not reachable (PROCTOR_TEST_REDIS_URL)")
    data_dir, url = sqlite_data(tmp_path_factory, "triage-e2e")
    seeded = asyncio.run(
        seed(url, data_dir, n_candidates=4, room_size=2, rules=E2E_RULES, watch_all_rooms=True)
    )
    ns = f"t{uuid.uuid4().hex[:8]}"
    env = {"PROCTOR_REDIS_URL": REDIS_URL, "PROCTOR_REDIS_NAMESPACE": ns, "PROCTOR_WORKERS": "1"}
    yield from served(url, data_dir, models_dir, env, seeded=seeded, namespace=ns)


async def feed_order(page: Page) -> list[tuple[str, str, str]]:
    """(alert id, severity, raised_at) of the alerts shown, top to bottom."""
    return [
        tuple(row)
        for row in await page.evaluate(
            """() => [...document.querySelectorAll('#alert-feed li.alert')]
                .filter((li) => !li.hidden)
                .map((li) => [li.dataset.alertId, li.dataset.severity,
                              li.querySelector('time.alert-time').dateTime])"""
        )
    ]


def assert_sorted(rows: list[tuple[str, str, str]]) -> None:
    keys = [(SEVERITY_RANK[sev], -datetime.fromisoformat(at).timestamp()) for _, sev, at in rows]
    assert keys == sorted(keys), rows  # severity first, then newest first


async def test_console_triage(triage_server, media_dir, chromium_path, tmp_path):
    s = triage_server.seeded
    base = triage_server.url
    (a_id, a_name, a_idn), (b_id, b_name, _), (c_id, c_name, _), (d_id, d_name, _) = s.candidates
    image = media_dir / "images" / "two_people.jpg"
    phone = media_dir / "images" / "rfphone_0_jpg.jpg"
    inject = AlertInjector(
        triage_server.database_url, triage_server.data_dir, REDIS_URL, triage_server.namespace
    )

    async def raise_(cid: int, name: str, type_: str, severity: str, img: Path = image) -> str:
        return str(
            await inject.raise_alert(
                candidate_id=cid,
                sitting_id=s.sitting_id,
                name=name,
                type=type_,
                severity=severity,
                image=img,
            )
        )

    leaving = center_focus_absence(media_dir, tmp_path / "leaving.webm", 5.0, 60.0, (480, 640))
    a_media = HeadlessCandidate(base, s.password, a_idn)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            ctx = await browser.new_context(
                base_url=base,
                viewport={"width": 1500, "height": 1000},
                locale="zh-CN",
                permissions=["notifications"],
            )
            await ctx.add_init_script(INSTRUMENT)
            con = await ctx.new_page()
            errors: list[str] = []
            con.on("pageerror", lambda exc: errors.append(str(exc)))
            await console_login(con, s.staff, "**/console/room.html*")
            # both rooms: every candidate of the invigilator's rooms in one view
            await expect(con.locator("#tile-grid .tile")).to_have_count(4, timeout=15_000)
            await expect(con.locator("#room-select")).to_have_value("")

            # -- opt in to the chime and desktop notifications (remembered per browser) -----
            toggle = con.locator("#critical-toggle")
            await expect(toggle).to_have_attribute("aria-pressed", "false")
            await toggle.click()
            await expect(toggle).to_have_attribute("aria-pressed", "true")
            status = con.locator("#critical-status")
            await expect(status).to_have_attribute("data-permission", "granted")

            # -- A leaves the seat for real; alerts of both rooms arrive ------------------
            await a_media.login()
            await a_media.start_view("first", leaving.path, loop=False)
            feed = con.locator("#alert-feed")
            i_speech = await raise_(b_id, b_name, "speech", "warning")
            i_device = await raise_(c_id, c_name, "device", "critical", phone)
            i_look = await raise_(d_id, d_name, "looking_away", "info")
            i_two = await raise_(b_id, b_name, "multiple_persons", "critical")
            for alert_id in (i_speech, i_device, i_look, i_two):
                await expect(feed.locator(f'li.alert[data-alert-id="{alert_id}"]')).to_be_visible(
                    timeout=15_000
                )
            absent = feed.locator(f'li.alert[data-type="absent"][data-candidate-id="{a_id}"]')
            await expect(absent.first).to_be_visible(timeout=60_000)
            await expect(absent.first.locator("img.alert-evidence-img")).to_be_visible()

            # sorted by severity, then time: the newest critical first, info last
            rows = await feed_order(con)
            assert_sorted(rows)
            ids = [r[0] for r in rows]
            assert ids[:2] == [i_two, i_device] and ids[-1] == i_look
            assert ids.index(i_speech) < ids.index(i_look)
            # the two critical alerts chimed and notified; warnings and info did not
            await expect(status).to_have_attribute("data-chimes", "2")
            await expect(status).to_have_attribute("data-notifications", "2")
            assert await con.evaluate("window.__tones") == 4  # two tones a chime
            notes = await con.evaluate("window.__notes")
            assert len(notes) == 2 and all("Critical alert" in n for n in notes), notes

            # -- filters by alert type ----------------------------------------------------
            types = con.locator("#alert-type-filters")
            await expect(
                types.locator('.type-filter[data-type="device"] .filter-count')
            ).to_have_text("1")
            await types.locator('.type-filter[data-type="device"]').click()
            assert [r[0] for r in await feed_order(con)] == [i_device]
            await types.locator('.type-filter[data-type="speech"]').click()
            assert [r[0] for r in await feed_order(con)] == [i_device, i_speech]
            await types.locator('.type-filter[data-type=""]').click()
            await expect(feed.locator("li.alert:not([hidden])")).to_have_count(len(rows))
            await con.screenshot(path=str(tmp_path / "triage.png"))

            # -- keyboard: help, next / previous, acknowledge ----------------------------------
            await con.locator("body").click(position={"x": 5, "y": 5})
            await con.keyboard.press("?")
            help_ = con.locator("#shortcut-help")
            await expect(help_).to_be_visible()
            await expect(help_).to_contain_text("Next alert")
            await con.keyboard.press("Escape")
            await expect(help_).to_be_hidden()
            await con.keyboard.press("j")
            await expect(feed).to_have_attribute("data-selected", i_two)
            await con.keyboard.press("j")
            await expect(feed).to_have_attribute("data-selected", i_device)
            await con.keyboard.press("k")
            await expect(feed).to_have_attribute("data-selected", i_two)
            b_tile = con.locator(f'.tile[data-candidate-id="{b_id}"]')
            await expect(b_tile).to_have_attribute("data-open-alerts", "2")
            await con.keyboard.press("a")
            handle = con.locator("#handle-dialog")
            await expect(handle).to_be_visible()
            await expect(con.locator("#handle-reason")).not_to_have_value("")
            await con.keyboard.press("Enter")
            await expect(handle).to_be_hidden()
            await expect(feed.locator(f'li.alert[data-alert-id="{i_two}"]')).to_be_hidden()
            await expect(b_tile).to_have_attribute("data-open-alerts", "1")

            # -- keyboard: a saved phrase to the selected alert's candidate; open it -----------
            await con.keyboard.press("j")
            await expect(feed).to_have_attribute("data-selected", i_device)
            await con.keyboard.press("p")
            picker = con.locator("#phrase-dialog")
            await expect(picker.locator(".phrase-pick")).to_have_count(7)
            phrase = (await picker.locator('.phrase-pick[data-index="2"]').text_content())[1:]
            await con.keyboard.press("2")
            await expect(picker).to_be_hidden()
            c_tile = con.locator(f'.tile[data-candidate-id="{c_id}"]')
            await expect(c_tile.locator(".danmaku-list")).to_contain_text(phrase.strip())
            await con.keyboard.press("o")
            panel = con.locator("#candidate-panel")
            await expect(panel).to_be_visible()
            await expect(panel.locator("#panel-title")).to_have_text(c_name)
            await panel.locator("#panel-close").click()
            await expect(panel).to_be_hidden()

            # -- snooze B's speech alerts for 5 minutes, with a reason (keyboard) -------------
            await con.locator("body").click(position={"x": 5, "y": 5})
            for _ in range(len(rows)):
                if await feed.get_attribute("data-selected") == i_speech:
                    break
                await con.keyboard.press("j")
            await expect(feed).to_have_attribute("data-selected", i_speech)
            await con.keyboard.press("s")
            snooze = con.locator("#snooze-dialog")
            await expect(snooze).to_be_visible()
            await expect(snooze.locator("#snooze-what")).to_contain_text(b_name)
            await con.select_option("#snooze-minutes", "5")
            await snooze.locator(".reason-pick").first.click()
            reason = await con.locator("#snooze-reason").input_value()
            await con.locator("#snooze-submit").click()
            await expect(snooze).to_be_hidden()
            box = con.locator("#snoozes-box")
            await expect(box).to_be_visible()
            item = box.locator(f'.snooze-item[data-candidate-id="{b_id}"][data-type="speech"]')
            await expect(item).to_have_count(1)
            await expect(item).to_contain_text(reason)
            await expect(b_tile).to_have_attribute("data-snoozed", "speech")
            await expect(b_tile.locator(".snooze-chip")).to_be_visible()

            # raised while snoozed: recorded, not pushed; later alerts still are
            i_snoozed = await raise_(b_id, b_name, "speech", "critical")
            i_other_type = await raise_(b_id, b_name, "looking_away", "info")
            i_other_cand = await raise_(c_id, c_name, "speech", "warning")
            for alert_id in (i_other_type, i_other_cand):
                await expect(feed.locator(f'li.alert[data-alert-id="{alert_id}"]')).to_be_visible(
                    timeout=15_000
                )
            # the bus keeps the order: had the snoozed alert been pushed, it would be before
            # polled with evaluate: wait_for_function evaluates a string in the page, which
            # the pages' CSP (no unsafe-eval) refuses
            wanted = [i_other_type, i_other_cand]

            async def both_pushed() -> bool | None:
                pushed = await con.evaluate("window.__pushed")
                return True if all(i in pushed for i in wanted) else None

            await eventually(both_pushed, 15, "the other two alerts pushed")
            assert i_snoozed not in await con.evaluate("window.__pushed")
            await expect(feed.locator(f'li.alert[data-alert-id="{i_snoozed}"]')).to_be_hidden()
            await expect(status).to_have_attribute("data-chimes", "2")  # nor chimed
            await expect(b_tile).to_have_attribute("data-open-alerts", "2")
            # a reload lists it as recorded while snoozed, hidden until asked for
            await con.reload()
            await expect(con.locator("#critical-toggle")).to_have_attribute(
                "aria-pressed", "true"
            )  # the opt-in is remembered
            snoozed_li = feed.locator(f'li.alert[data-alert-id="{i_snoozed}"]')
            await expect(snoozed_li).to_have_count(1, timeout=15_000)
            await expect(snoozed_li).to_be_hidden()
            await expect(con.locator("#snoozed-alert-count")).to_have_text("1")
            await expect(b_tile).to_have_attribute("data-open-alerts", "2")
            await box.locator("summary").click()
            await con.check("#show-snoozed")
            await expect(snoozed_li).to_be_visible()
            await expect(snoozed_li).to_have_attribute("data-snoozed", "true")
            await expect(snoozed_li.locator(".alert-snoozed")).to_contain_text("静音")
            await con.uncheck("#show-snoozed")

            # the snooze in B's history, who and why
            b_timeline = None
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                token = (
                    await http.post(
                        "/api/staff/login", json={"username": s.staff[0], "password": s.staff[1]}
                    )
                ).json()["token"]
                h = {"authorization": f"Bearer {token}"}
                b_timeline = (
                    await http.get(f"/api/console/candidates/{b_id}/timeline", headers=h)
                ).json()
            snoozed = [
                i["action"]
                for i in b_timeline
                if i["kind"] == "action" and i["action"]["kind"] == "alerts_snoozed"
            ]
            assert len(snoozed) == 1 and snoozed[0]["reason"] == reason
            assert snoozed[0]["data"]["type"] == "speech" and snoozed[0]["data"]["minutes"] == 5
            assert snoozed[0]["staff_name"] == "Invigilator One"
            assert int(i_snoozed) in [i["alert"]["id"] for i in b_timeline if i["kind"] == "alert"]

            # -- ended early: B's speech alerts are pushed again --------------------------
            await item.locator(".snooze-end").click()
            await expect(item).to_have_count(0)
            await expect(b_tile).to_have_attribute("data-snoozed", "")
            i_after = await raise_(b_id, b_name, "speech", "warning")
            await expect(feed.locator(f'li.alert[data-alert-id="{i_after}"]')).to_be_visible(
                timeout=15_000
            )
            assert_sorted(await feed_order(con))
            await con.screenshot(path=str(tmp_path / "triage-after.png"))
            assert errors == []
        finally:
            await browser.close()
            await a_media.close()
            await inject.close()


async def test_feed_orders_and_shows_episodes(triage_server, chromium_path):
    """The feed module on its own, in Chromium: order by severity then time whatever
    else an alert carries, and an episode's fields (ongoing, last seen, peak score) shown
    without any change to the feed (the shape issue 18's episodes give alerts)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            page = await (await browser.new_context(base_url=triage_server.url)).new_page()
            await page.goto("/console/index.html")
            result = await page.evaluate(
                """async () => {
                  const { AlertFeed } = await import('/console/alerts.js');
                  const list = document.createElement('ol');
                  document.body.append(list);
                  const feed = new AlertFeed(list, {
                    onOpenEvidence() {}, onCandidate() {}, onHandle() {}, onSnooze() {},
                  });
                  const t = (s) => new Date(Date.UTC(2026, 11, 6, 10, 0, s)).toISOString();
                  const a = (id, severity, s, more = {}) => ({
                    id, candidate_id: id % 3, candidate_name: `C${id % 3}`, type: 'device',
                    severity, view: 'first', message: 'm', status: 'open',
                    started_at: t(s), raised_at: t(s), ...more });
                  feed.merge([
                    a(1, 'info', 50), a(2, 'critical', 10), a(3, 'warning', 40),
                    a(4, 'critical', 30, { ongoing: true, last_seen_at: t(55), peak_score: 0.91 }),
                    a(5, 'warning', 45, { status: 'acknowledged' }),
                    a(6, 'warning', 20, { ongoing: false, last_seen_at: t(50) }),
                  ]);
                  const order = () => feed.shownAlerts().map((x) => x.id);
                  const before = order();
                  // an episode updated while it lasts: became critical, seen again
                  feed.add(a(3, 'critical', 40, { ongoing: true, last_seen_at: t(59) }));
                  // late copies change nothing: an earlier update, an open copy of a handled
                  feed.add(a(3, 'warning', 40, { ongoing: true, last_seen_at: t(50) }));
                  feed.add(a(2, 'critical', 10, { status: 'acknowledged' }));
                  feed.merge([a(2, 'critical', 10)]);
                  const li = (id) => list.querySelector(`li[data-alert-id="${id}"]`);
                  return {
                    before, after: order(),
                    facts4: li(4).querySelector('.alert-facts').textContent,
                    facts6: li(6).querySelector('.alert-facts').textContent,
                    facts1: li(1).querySelector('.alert-facts'),
                  };
                }"""
            )
        finally:
            await browser.close()
    assert result["before"] == [4, 2, 3, 6, 1]  # acknowledged 5 hidden
    assert result["after"] == [3, 4, 6, 1]  # 2 acknowledged, and stays so
    assert "ongoing since" in result["facts4"] and "peak" in result["facts4"]
    assert "0.91" in result["facts4"]
    assert "lasted" in result["facts6"] and "0:30" in result["facts6"]
    assert result["facts1"] is None
