"""The web page (``GET /``), in a real headless Chromium driven by Selenium, on the small genre model.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and the ``selenium`` package; without them they skip and say why, and the
tests of the page's files and headers still run.  The server requires an API key
(``RECFUSE_API_KEY``), typed into the page as a person would.

The user: ``196``, as the issue has it ("choose user 196 on a small model"): ``u0`` of the genre model
(:func:`recfuse.serve.testing.genre_dataset`, whose ids are ``u0``..``u159``) renamed ``196`` in a copy of
the ``genre_model`` directory (:func:`recfuse.serve.testing.relabel_users`; the model is untouched), a
Horror fan whose history holds no Western.  On the ``genre_model`` fit (seed 0) their gate reads
0.43-0.44 short-term when the page opens (their last event is a month old) and about 0.99 after three
Westerns watched seconds apart; the Westerns then fill the list.  That is the deterministic condition
tested: a month away, then a burst in a new genre.  The page shows each item's explanation in words
(``explain=text``) and the user's interest summary (``/v1/users/196/profile``) above the list.

``RECFUSE_UI_SCREENSHOTS=DIR`` saves the user view before and after the clicks as
``DIR/ui-user-before.png`` and ``DIR/ui-user-after.png`` (the pictures in docs/serving.md).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")

import httpx

from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.routes import ui
from recfuse.serve.testing import GENRES, ServerThread, genre_of, relabel_users

API_KEY, ADMIN_KEY = "ui-api-key", "ui-admin-key"
KEY = {"X-API-Key": API_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
USER = "196"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_ID = "xss-<svg onload=alert(2)>"


@pytest.fixture(scope="module")
def server(genre_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    tmp = tmp_path_factory.mktemp("ui")
    model = relabel_users(genre_model, tmp / "model", {"u0": USER})
    config = ServeConfig(model, db=f"sqlite:///{tmp / 'events.db'}", admin_key=ADMIN_KEY, api_key=API_KEY)  # text encoder preloaded
    srv = ServerThread(create_app(config)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


# ------------------------------------------------------------------ the files, without a browser
def test_page_and_assets_are_served_open_with_cache_and_security_headers(http: httpx.Client) -> None:
    page = http.get("/")  # no key: the page is open, the API behind it is not
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache" and "script-src 'self'" in page.headers["content-security-policy"]
    assert http.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
    urls = re.findall(r'(?:src|href)="(ui/[^"]+)"', page.text)
    assert sorted(u.split("?")[0] for u in urls) == ["ui/app.css", "ui/app.js"]
    for url in urls:
        r = http.get("/" + url)
        assert r.status_code == 200 and r.headers["cache-control"] == ui.ASSET_CACHE, url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert http.get("/" + url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        stale = http.get("/" + url.split("?")[0] + "?v=old")  # an old page's link: served, not kept
        assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    for missing in ("/ui/index.html", "/ui/nope.js", "/ui/..%2Fapp.py", "/ui/"):
        assert http.get(missing).status_code == 404, missing
    assert http.get(f"/v1/users/{USER}/recommendations").status_code == 401  # the API still wants its key
    body = page.text + "".join(http.get("/" + u).text for u in urls)
    assert API_KEY not in body and ADMIN_KEY not in body
    assert not [p for p in http.get("/openapi.json").json()["paths"] if p == "/" or p.startswith("/ui")]


def test_the_script_uses_only_public_routes_and_never_parses_html(http: httpx.Client) -> None:
    js = ui.files()["app.js"].body.decode()
    routes = re.search(r"const ROUTES = \{(.*?)\};", js, re.DOTALL)
    assert routes is not None
    paths = ["/" + p for p in re.findall(r':\s*"([^"]+)"', routes.group(1))]
    api = set(http.get("/openapi.json").json()["paths"]) | {"/openapi.json"}
    assert len(paths) == 11 and [p for p in paths if p not in api] == []
    # Every other string the script requests goes through ROUTES.
    assert re.findall(r'fetch\(\s*["\'`]', js) == [] and re.findall(r'["\'`]/?v1/', js.replace(routes.group(0), "")) == []
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "localStorage", "sessionStorage", "document.cookie"):
        assert sink not in js, sink


# ------------------------------------------------------------------ in Chromium
def _browser_missing() -> str | None:
    """Why the browser tests cannot run here (``None`` when they can)."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            return f"{binary} not found: apt-get install -y chromium chromium-driver (Debian) to run the browser tests"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed: pip install -e '.[dev]' to run the browser tests"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="recfuse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # As root in a sandbox with no network beyond loopback: no sandbox, no GPU, and nothing that phones home
    # (the closed network refuses those connections and slows every start).
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1360,1500", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The page in the browser, with the waits a person does implicitly (until the page is idle)."""

    def __init__(self, driver: Any, url: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.by = driver, By
        driver.get(url + "/")
        self.idle()

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(self.by.CSS_SELECTOR, css))

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def until(self, test: Callable[[], Any], timeout: float = 90) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: test())

    def idle(self) -> None:
        """Wait until the page has no request in flight."""
        self.until(lambda: self.js("return document.readyState === 'complete' && document.body.dataset.busy === '0'"))

    def renders(self) -> int:
        return int(self.js("return Number(document.body.dataset.renders)"))

    def type(self, css: str, text: str) -> None:
        box = self.find(css)
        box.clear()
        box.send_keys(text)

    def submit(self, form: str) -> None:
        self.find(f"{form} button[type=submit]").click()
        self.idle()

    def open_user(self, user: str) -> None:
        before = self.renders()
        self.type("#user-id", user)
        self.submit("#user-form")
        self.until(lambda: self.renders() > before)

    def gate(self) -> float:
        return float(self.find("#gate").get_attribute("data-gate"))

    def listed(self, css: str = "#recs") -> list[str]:
        return [li.get_attribute("data-item-id") for li in self.all(f"{css} > li.item")]

    def search(self, query: str) -> list[Any]:
        self.type("#query", query)
        self.submit("#search-form")
        self.until(lambda: self.all("#results > li.item"))
        return self.all("#results > li.item")

    def click_in(self, row: Any, css: str) -> None:
        before = self.renders()
        row.find_element(self.by.CSS_SELECTOR, css).click()
        self.idle()
        self.until(lambda: self.renders() > before)

    def no_alert(self) -> bool:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            _ = self.driver.switch_to.alert
        except NoAlertPresentException:
            return True
        return False


def _screenshot(page: Page, name: str, css: str = "#user-view", height: int = 1100) -> None:
    """Save the top ``height`` pixels of ``css``'s element as ``$RECFUSE_UI_SCREENSHOTS/name`` when that
    variable is set."""
    folder = os.environ.get("RECFUSE_UI_SCREENSHOTS")
    if folder:
        from PIL import Image

        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        page.driver.set_window_size(1360, int(page.js("return document.documentElement.scrollHeight")) + 200)
        page.find(css).screenshot(str(path))
        with Image.open(path) as shot:
            top = shot.crop((0, 0, shot.width, min(height, shot.height)))
        top.save(path, optimize=True)


def test_watching_a_new_genre_moves_the_list_the_gate_and_the_timeline(
    browser: Any, server: ServerThread, http: httpx.Client
) -> None:
    history = http.get(f"/v1/users/{USER}/events", headers=KEY).json()["events"]
    new_genre = next(g for g in GENRES if g not in {genre_of(e["item_id"]) for e in history})
    page = Page(browser, server.url)
    page.type("#api-key", API_KEY)
    page.open_user(USER)
    before, gate_before = page.listed(), page.gate()
    assert len(before) == 10 and page.all("#timeline > li.event")
    assert len(page.all("#recs .why-words")) == 10 and page.all("#recs .why-facts") == []
    summary_before = page.find("#profile-text").text
    assert page.find("#profile").is_displayed() and ("Your long-term taste leads" in summary_before) == (gate_before < 0.5)
    _screenshot(page, "ui-user-before.png")

    rows = [r for r in page.search(f"{new_genre} films") if r.get_attribute("data-genres") == new_genre]
    clicked = []
    for n in range(3):  # the rows stay put: the search list is not redrawn by a click
        row = rows[n]
        clicked.append(row.get_attribute("data-item-id"))
        page.click_in(row, "button.act-watched")

    after, gate_after = page.listed(), page.gate()
    assert after != before
    summary_after = page.find("#profile-text").text
    assert summary_after != summary_before and ("Your short-term interest leads" in summary_after) == (gate_after >= 0.5)
    assert new_genre.lower() in summary_after and new_genre.lower() not in summary_before, summary_after
    assert sum(genre_of(i) == new_genre for i in after) >= 5, after
    assert gate_after > gate_before + 0.2, (gate_before, gate_after)
    newest = [li.get_attribute("data-item-id") for li in page.all("#timeline > li.event")][:3]
    assert newest == clicked[::-1]
    assert all("mine" in li.get_attribute("class") for li in page.all("#timeline > li.event")[:3])
    drove = {li.get_attribute("data-item-id") for li in page.all("#timeline > li.event.drove")}
    assert drove & set(clicked), "the clicked items drove the new list and are marked in the timeline"
    trail = [float(li.get_attribute("data-gate")) for li in page.all("#gate-trail > li")]
    assert trail[0] == pytest.approx(gate_before) and trail[-1] == pytest.approx(gate_after) and len(trail) == 4
    stored = http.get(f"/v1/users/{USER}/events", headers=KEY).json()["events"][-3:]
    assert [e["item_id"] for e in stored] == clicked and {e["type"] for e in stored} == {"watched"}
    _screenshot(page, "ui-user-after.png")

    # Admin: an item added by title and description is found by search at once.
    page.type("#admin-key", ADMIN_KEY)
    page.type("#item-id", "new-western-1")
    page.type("#item-title", "Dust Devil Gunfight at Coyote Creek")
    page.type("#item-genres", new_genre)
    page.type("#item-text", "A lone gunslinger rides into a dusty frontier town to face the outlaw gang.")
    page.submit("#item-form")
    page.until(lambda: "Added new-western-1" in page.find("#admin-status").text)
    found = page.search("gunfight at Coyote Creek")
    assert found[0].get_attribute("data-item-id") == "new-western-1"
    assert found[0].find_element(page.by.CSS_SELECTOR, ".title").text == "Dust Devil Gunfight at Coyote Creek"
    # The health panel: the model is loaded and the events counted, the request rate read from /metrics.
    page.until(lambda: page.find('#health dd[data-key="status"]').text == "ok")
    page.until(lambda: int(page.find('#health dd[data-key="events stored since start"]').text.replace(",", "")) >= 3)
    page.until(lambda: page.all('#metrics tr[data-route="/v1/events"]'))
    _screenshot(page, "ui-page.png", "body", height=1500)
    assert page.no_alert() and browser.get_log("browser") == []


def test_markup_in_item_titles_renders_as_text(browser: Any, server: ServerThread, http: httpx.Client) -> None:
    item = {"item_id": XSS_ID, "title": XSS_TITLE, "genres": "<b>Horror</b>",
            "text": "A haunted crypt at midnight: ghosts, zombies and a demon in the cellar."}
    assert http.post("/v1/items", json={"items": [item]}, headers=ADMIN).status_code == 200
    page = Page(browser, server.url)
    page.type("#api-key", API_KEY)
    page.open_user("u1")
    rows = [r for r in page.search("haunted crypt ghosts zombies demon cellar") if r.get_attribute("data-item-id") == XSS_ID]
    assert rows, "the item is found"
    assert rows[0].find_element(page.by.CSS_SELECTOR, ".title").text == XSS_TITLE
    assert rows[0].find_element(page.by.CSS_SELECTOR, ".genres").text == "<b>Horror</b>"
    page.click_in(rows[0], "button.act-watched")  # into the timeline and the explanations
    assert page.all("#timeline > li.event")[0].find_element(page.by.CSS_SELECTOR, ".title").text == XSS_TITLE
    rows[0].find_element(page.by.CSS_SELECTOR, "button.act-similar").click()
    page.until(lambda: page.find("#results-title").text.startswith("Similar to"))
    assert XSS_TITLE in page.find("#results-title").text
    assert page.no_alert()
    assert page.js("return document.querySelectorAll('main img, main svg, main b').length") == 0
    assert XSS_TITLE in page.js("return document.querySelector('#timeline').textContent")


def test_without_the_key_the_page_says_so_then_works_with_it(browser: Any, server: ServerThread) -> None:
    page = Page(browser, server.url)
    page.type("#user-id", "u2")
    page.submit("#user-form")
    page.until(lambda: page.find("#notice").is_displayed())
    assert "needs an API key" in page.find("#notice").text and page.all("#recs > li") == []
    page.type("#api-key", API_KEY)
    page.open_user("u2")
    assert not page.find("#notice").is_displayed() and len(page.listed()) == 10


def test_an_anonymous_session_ranks_from_the_clicked_items(browser: Any, server: ServerThread) -> None:
    page = Page(browser, server.url)
    page.type("#api-key", API_KEY)
    page.find("#anon-start").click()
    page.until(lambda: page.find("#view-title").text == "Anonymous session")
    rows = [r for r in page.search("Comedy films") if r.get_attribute("data-genres") == "Comedy"]
    page.click_in(rows[0], "button.act-watched")
    page.click_in(rows[1], "button.act-watched")
    listed = page.listed()
    assert len(listed) == 10 and sum(genre_of(i) == "Comedy" for i in listed) >= 5, listed
    assert 0 <= page.gate() <= 1 and len(page.all("#gate-trail > li")) == 2
    clicked = [r.get_attribute("data-item-id") for r in rows[:2]]
    assert [li.get_attribute("data-item-id") for li in page.all("#timeline > li.event")] == clicked[::-1]


def test_explanations_and_the_summary_are_shown_in_words_as_text(browser: Any, server: ServerThread, http: httpx.Client) -> None:
    """The page asks for ``explain=text`` and the profile and shows the service's sentences (each with its
    source), escaped like everything else; the timeline still marks the history items behind the list."""
    page = Page(browser, server.url)
    page.type("#api-key", API_KEY)
    page.open_user("u3")
    answer = http.get("/v1/users/u3/recommendations", params={"k": 10, "explain": "text"}, headers=KEY).json()
    words = page.all("#recs .why-words")
    assert len(words) == 10 and page.all("#recs .why-facts") == []
    assert [w.text for w in words] == [it["explanation"]["text"]["text"] + "template" for it in answer["items"]]
    summary = http.get("/v1/users/u3/profile", headers=KEY).json()["summary"]
    assert page.find("#profile-text").text == summary + "template"
    assert page.all("#timeline > li.event.drove")


def test_without_words_in_the_answer_the_page_shows_the_facts(browser: Any, server: ServerThread) -> None:
    """An answer without ``explanation.text`` (an older server) shows each explanation's facts, and a
    profile without a summary its facts; the browser's fetch takes the words out of the real answers,
    and adds markup to the facts, which renders as text."""
    page = Page(browser, server.url)
    page.js("""
        const real = window.fetch;
        window.fetch = async (url, init) => {
          const r = await real(url, init);
          const u = String(url);
          if (!u.includes('/recommendations') && !u.includes('/profile')) return r;
          const body = await r.json();
          for (const it of body.items || []) if (it.explanation) delete it.explanation.text;
          if (body.facts) { delete body.summary; body.facts.long_term.genres.push('<i>Noir</i>'); }
          return new Response(JSON.stringify(body), {status: r.status, headers: r.headers});
        };""")
    page.type("#api-key", API_KEY)
    page.open_user("u4")
    assert page.all("#recs .why-words") == [] and len(page.all("#recs .why-facts")) == 10
    assert "because of" in page.find("#recs .why-facts").text
    facts = page.find("#profile-text").text
    assert facts.startswith("long-term: ") and "<i>Noir</i>" in facts and "short-term: " in facts
    assert page.js("return document.querySelectorAll('main i').length") == 0
