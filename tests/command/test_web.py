"""The web page of `sorf serve` in a real browser: Debian's chromium driven by Playwright, fully offline.

The real app (analyser/api.py) serves the demo capture in a thread. Every request the page makes to a host other
than 127.0.0.1 is aborted and fails the test, and so does any console error, page error or CSP violation (chromium
reports those on the console). Expected values come from the API itself, read with httpx.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from analyser.api import create_app
from analyser.report import STATEMENT
from sensor.ingest import ingest
from tests.helpers.paths import ROOT

DEMO = ROOT / "captures" / "demo-plant.pcap"
ZONES = ROOT / "captures" / "demo-zones.yaml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
TOKEN = "s3cret"
SCREENSHOTS = Path("/tmp")  # for a person to look at; each test also saves its own under tmp_path

# --- the server -------------------------------------------------------------------------------------------------------


@dataclass
class Served:
    base: str
    token: str | None

    def api(self, path: str, **params) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.get(f"{self.base}/api/v1{path}", params=params, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def deltas(self, **params) -> list[dict]:
        return self.api("/deltas", limit=1000, **params)["items"]


def _serve(tmp_path_factory, token: str | None) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("web") / "demo.duckdb"
    ingest([str(DEMO)], str(db))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # bound before the thread starts: no race for the port
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(str(db), str(ZONES), token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, None)


@pytest.fixture(scope="module")
def served_with_token(tmp_path_factory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, TOKEN)


# --- the browser ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Browsing:
    """A page, and what it did that a test must not see: requests off the box, errors on its console."""

    page: Page
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    allowed_failures: set[str] = field(default_factory=set)  # paths whose HTTP error status the test asks for

    def allow_failure(self, path: str) -> None:
        self.allowed_failures.add(path)

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        url = urlsplit(message.location.get("url") or "")
        if message.text.startswith("Failed to load resource") and url.path in self.allowed_failures:
            return
        self.errors.append(f"{message.text} ({message.location.get('url') or 'page'})")

    def on_request(self, route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@pytest.fixture
def browsing(browser: Browser, tmp_path) -> Iterator[Browsing]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    b = Browsing(page)
    page.route("**/*", b.on_request)
    page.on("console", b.on_console)
    page.on("pageerror", lambda error: b.errors.append(f"page error: {error}"))
    try:
        yield b
    finally:
        context.close()
    assert b.outside == [], f"the page tried to reach outside 127.0.0.1: {b.outside}"
    assert b.errors == [], f"console errors, page errors or CSP violations: {b.errors}"


def rows(page: Page):
    return page.locator("table.deltas tbody tr")


def row_ids(page: Page) -> list[str]:
    return [r.get_attribute("data-id") for r in rows(page).all()]


def open_overview(page: Page, served: Served, count: int) -> None:
    page.goto(served.base + "/")
    expect(rows(page)).to_have_count(count)


def _download_evidence(page: Page, delta_id: str, tmp_path: Path) -> Path:
    """Click the delta page's pcap link; the file saved, checked to be a pcapng named after the delta."""
    with page.expect_download() as info:
        page.get_by_role("link", name="Download evidence (pcapng)").click()
    download = info.value
    assert download.suggested_filename == f"sorf-evidence-{delta_id}.pcapng"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:4] == PCAPNG_MAGIC
    return saved


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


# --- without a token --------------------------------------------------------------------------------------------------


def test_the_page_shows_the_window_its_statement_and_every_delta(served, browsing, tmp_path):
    page = browsing.page
    health = served.api("/health")
    deltas = served.deltas()
    assert health["statement"] == STATEMENT and len(deltas) == 5  # the demo's five planted deltas
    open_overview(page, served, len(deltas))

    expect(page.locator("#statement")).to_be_visible()
    expect(page.locator("#statement")).to_have_text(STATEMENT)
    expect(page.locator("#site")).to_have_text(health["site"])
    window = page.locator("#window")
    for term, value in (("Captures", health["window"]["captures"]), ("Flows", health["window"]["flows"]),
                        ("Hosts", health["window"]["hosts"])):  # fmt: skip
        expect(window.locator(".fact", has=page.locator("dt", has_text=term)).locator("dd")).to_have_text(str(value))
    expect(window).to_contain_text("UTC")
    expect(page.locator("body")).not_to_contain_text("enforced")

    assert row_ids(page) == [d["id"] for d in deltas]  # worst first, as the API orders them
    expect(page.locator("#delta-count")).to_have_text(f"{len(deltas)} of {len(deltas)} deltas")
    first = rows(page).first
    expect(first.locator(".badge")).to_have_text(deltas[0]["severity"])
    expect(first).to_contain_text(deltas[0]["category"].replace("_", " "))
    screenshot(page, tmp_path, "sorf-web")


def test_filters_narrow_the_table_to_the_matching_deltas(served, browsing):
    page = browsing.page
    everything = served.deltas()
    open_overview(page, served, len(everything))

    for name, value in (("severity", "high"), ("severity", "critical"), ("category", "access_exceeded"),
                        ("zone", "supervisory"), ("protocol", "s7comm")):  # fmt: skip
        page.get_by_role("button", name="Clear filters").click()
        expect(rows(page)).to_have_count(len(everything))
        page.get_by_label(name.capitalize(), exact=True).select_option(value)
        expected = [d["id"] for d in served.deltas(**{name: value})]
        assert expected, f"the demo has no delta with {name}={value}"
        expect(rows(page)).to_have_count(len(expected))
        assert row_ids(page) == expected, f"{name}={value}"
        expect(page.locator("#delta-count")).to_have_text(f"{len(expected)} of {len(everything)} deltas")

    page.get_by_label("Severity", exact=True).select_option("critical")  # two filters at once
    expected = [d["id"] for d in served.deltas(protocol="s7comm", severity="critical")]
    assert expected
    expect(rows(page)).to_have_count(len(expected))
    assert row_ids(page) == expected

    page.get_by_role("button", name="Clear filters").click()
    expect(rows(page)).to_have_count(len(everything))


def test_the_filter_choices_come_from_the_data(served, browsing):
    page = browsing.page
    deltas = served.deltas()
    open_overview(page, served, len(deltas))
    zones = [z["name"] for z in served.api("/zones")["items"]]
    protocols = sorted({p for d in deltas for p in [d["protocol"], *d["protocols"]] if p})
    assert page.locator("#filter-zone option").all_text_contents() == ["any", *zones]
    assert page.locator("#filter-protocol option").all_text_contents() == ["any", *protocols]


def test_the_zone_picture_is_inline_and_its_crossings_open_their_deltas(served, browsing):
    page = browsing.page
    everything = served.deltas()
    open_overview(page, served, len(everything))
    svg = page.locator("#main .picture svg")
    expect(svg).to_be_visible()
    names = " ".join(svg.locator("text").all_text_contents())
    for zone in ("enterprise", "supervisory", "control"):
        assert zone in names

    edges = svg.locator('[data-delta-ids]:not([data-delta-ids=""]):not(.edge-label)')
    assert edges.count() > 0
    opened = set()
    for i in range(edges.count()):
        ids = edges.nth(i).get_attribute("data-delta-ids").split()
        edges.nth(i).focus()  # the keyboard, as a person without a mouse would; the same handler as a click
        page.keyboard.press("Enter")
        if len(ids) == 1:
            expect(page.locator("#delta-title")).to_have_text(
                next(d["message"] for d in everything if d["id"] == ids[0])
            )
            assert page.url.endswith(f"#/delta/{ids[0]}")
        else:
            expect(rows(page)).to_have_count(len(ids))
            assert sorted(row_ids(page)) == sorted(ids)
            expect(page.locator(".selection")).to_contain_text(f"{len(ids)} deltas")
        opened.update(ids)
        page.goto(served.base + "/#/")
        expect(rows(page)).to_have_count(len(everything))
    assert opened <= {d["id"] for d in everything}

    label = svg.locator(".edge-label.clickable").first  # the mouse, on the label drawn for an edge
    label.click()
    expect(page).to_have_url(re.compile(r"#/(delta/[0-9a-f]+|\?ids=)"))
    page.goto(served.base + "/#/")

    svg.locator('.zone[data-zone="control"]').click()
    expected = [d["id"] for d in served.deltas(zone="control")]
    expect(page.get_by_label("Zone", exact=True)).to_have_value("control")
    expect(rows(page)).to_have_count(len(expected))
    assert row_ids(page) == expected


def test_a_delta_page_shows_its_evidence_and_downloads_it(served, browsing, tmp_path):
    page = browsing.page
    deltas = served.deltas()
    chosen = next(
        d for d in deltas if d["evidence"] and d["evidence"]["first"]["frame"] != d["evidence"]["last"]["frame"]
    )
    detail = served.api(f"/deltas/{chosen['id']}", limit=50)
    first, last = chosen["evidence"]["first"]["frame"], chosen["evidence"]["last"]["frame"]

    open_overview(page, served, len(deltas))
    rows(page).filter(has_text=chosen["id"]).locator("td").nth(2).click()  # a row click, not its link
    expect(page.locator(".delta-page")).to_be_visible()
    assert page.url.endswith(f"#/delta/{chosen['id']}")
    expect(page.locator("#delta-title")).to_have_text(chosen["message"])

    evidence = page.locator(".evidence")
    expect(evidence).to_have_count(2)
    for card, frame in zip(evidence.all(), (first, last), strict=True):
        expect(card.locator(".frame")).to_have_text(str(frame))
        expect(card.locator(".filter-code")).to_have_text(f"frame.number == {frame}")
        expect(card).to_contain_text(chosen["evidence"]["first"]["path"])

    evidence.first.get_by_role("button", name="Copy").click()
    expect(evidence.first.locator(".copy-note")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == f"frame.number == {first}"

    table = page.locator("table.evidence-rows tbody tr")
    expect(table).to_have_count(len(detail["evidence"]["items"]))
    frame_column = "frame" if detail["evidence"]["kind"] == "operations" else "first_frame"
    expect(table.first.locator("td").first).to_have_text(str(detail["evidence"]["items"][0][frame_column]))

    _tshark_reads(_download_evidence(page, chosen["id"], tmp_path))
    screenshot(page, tmp_path, "sorf-web-delta")

    page.get_by_role("link", name="All deltas").click()
    expect(rows(page)).to_have_count(len(deltas))


def test_a_delta_without_evidence_says_so(served, browsing):
    page = browsing.page
    unused = next(d for d in served.deltas() if d["evidence"] is None)
    page.goto(f"{served.base}/#/delta/{unused['id']}")
    expect(page.locator("#delta-title")).to_have_text(unused["message"])
    expect(page.locator(".delta-page")).to_contain_text("No frame")
    expect(page.get_by_role("link", name="Download evidence (pcapng)")).to_have_count(0)


def test_an_unknown_delta_is_reported_as_not_found(served, browsing):
    page = browsing.page
    browsing.allow_failure("/api/v1/deltas/000000000000")
    page.goto(f"{served.base}/#/delta/000000000000")
    expect(page.get_by_role("alert")).to_contain_text("was not found")
    expect(page.locator("#statement")).to_have_text(STATEMENT)


def test_the_tables_page_through_the_api_with_its_limit_and_offset(served, browsing):
    """The demo fits on one page; asking the API for smaller pages shows that the page follows its limit and offset."""
    page = browsing.page

    def small_pages(route):  # the page asks for 100 deltas and 50 evidence rows a page; make it 2 and 1
        url = route.request.url.replace("limit=100&", "limit=2&").replace("limit=50&", "limit=1&")
        route.continue_(url=url)

    page.route("**/api/v1/deltas**", small_pages)
    everything = [d["id"] for d in served.deltas()]
    page.goto(served.base + "/")
    pager = page.get_by_role("navigation", name="Pages of deltas")
    seen = []
    for start in range(0, len(everything), 2):
        expect(rows(page)).to_have_count(min(2, len(everything) - start))
        expect(pager).to_contain_text(f"{start + 1}\u2013{min(start + 2, len(everything))} of {len(everything)}")
        seen += row_ids(page)
        if start + 2 < len(everything):
            pager.get_by_role("button", name="Next").click()
    assert seen == everything
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()

    details = {
        d["id"]: served.api(f"/deltas/{d['id']}", limit=1000)["evidence"] for d in served.deltas() if d["evidence"]
    }
    chosen, detail = max(details.items(), key=lambda item: item[1]["total"])
    assert detail["total"] >= 2
    page.goto(f"{served.base}/#/delta/{chosen}")
    pager = page.get_by_role("navigation", name="Pages of evidence")
    frames = page.locator("table.evidence-rows tbody tr td:first-child")
    for i, row in enumerate(detail["items"]):
        expect(pager).to_contain_text(f"{i + 1}\u2013{i + 1} of {detail['total']}")
        expect(frames).to_have_text([str(row.get("frame", row.get("first_frame")))])
        if i + 1 < detail["total"]:
            pager.get_by_role("button", name="Next").click()
    pager.get_by_role("button", name="Previous").click()
    before_last = detail["items"][-2]
    expect(frames).to_have_text([str(before_last.get("frame", before_last.get("first_frame")))])


def _tshark_reads(path: Path) -> None:
    if shutil.which("tshark") is None:  # .ci/run installs it; a developer's machine may lack it
        return
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert len(out.stdout.split()) >= 1, out.stderr


# --- with a token -----------------------------------------------------------------------------------------------------


def test_with_a_token_the_page_asks_for_it_once_then_shows_the_deltas(served_with_token, browsing, tmp_path):
    page = browsing.page
    served = served_with_token
    browsing.allow_failure("/api/v1/health")  # the 401 answers that make the page ask
    for path in ("/api/v1/zones", "/api/v1/deltas"):
        browsing.allow_failure(path)
    assert httpx.get(f"{served.base}/api/v1/health").status_code == 401
    deltas = served.deltas()

    page.goto(served.base + "/")
    token = page.get_by_label("Token", exact=True)
    expect(token).to_be_visible()
    expect(page.locator("#statement")).to_have_text(STATEMENT)  # even before the token: it is in the page itself
    expect(rows(page)).to_have_count(0)
    screenshot(page, tmp_path, "sorf-web-token")

    token.fill("wrong")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept")
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Continue").click()
    expect(rows(page)).to_have_count(len(deltas))
    assert row_ids(page) == [d["id"] for d in deltas]

    page.reload()  # kept for the tab: not asked again
    expect(rows(page)).to_have_count(len(deltas))
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)

    chosen = next(d for d in deltas if d["evidence"])
    page.goto(f"{served.base}/#/delta/{chosen['id']}")
    _download_evidence(page, chosen["id"], tmp_path)  # a link cannot carry the header: fetched, handed over as a Blob


def test_the_api_documentation_works_offline(served, browsing, tmp_path):
    """/docs is Swagger UI from the swagger-ui-bundle package, not from a CDN: it lists every endpoint."""
    page = browsing.page
    page.goto(served.base + "/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    paths = set(page.locator(".opblock-summary-path").all_text_contents())
    expected = set(httpx.get(served.base + "/openapi.json").json()["paths"])
    assert {p.replace("\u200b", "") for p in paths} == expected
    screenshot(page, tmp_path, "sorf-docs")
