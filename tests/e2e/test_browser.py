"""The search page in a real browser: Debian's chromium, driven by Playwright, against a real
`imgsearch watch` over the bundled example collection with the tiny models. What is right is read
from the example itself (each file is named after its scene's canonical caption), not hard-coded.

Needs `pip install playwright` and `apt-get install chromium` (no `playwright install`: the
browser is the system's). With IMGSEARCH_SCREENSHOT set, also writes docs/screenshot-results.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from imgsearch.settings import Settings
from imgsearch.shapes.examples import write_examples
from imgsearch.shapes.world import parse

READY_S = 120
QUERY = "a yellow star"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot-results.png"


@dataclass(frozen=True)
class Service:
    url: str
    photos: Path
    images: int


def kinds(path: str) -> set[tuple[str, str]]:
    """(colour, shape) of every object in an example picture, read from its file name
    (`005-large-yellow-star.png`: the example writer names each file after its scene's caption)."""
    sentence = "a " + Path(path).stem.split("-", 1)[1].replace("-", " ")
    query = parse(sentence)
    return {(o["colour"], o["shape"]) for o in (query.first, query.second) if o}


def _status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "/api/status", timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _settled(status: dict) -> bool:
    return status["pending_captions"] == 0 and status["activity"]["state"] == "idle"


def _wait_ready(proc: subprocess.Popen, service_file: Path, log: Path, pictures: int, settled: bool) -> str:
    """Until the service answers and every picture has its vector (and, for the screenshot, its
    caption); fails with the service's log otherwise. `images` alone is no sign of readiness: it
    counts what the scan has found so far."""
    deadline = time.monotonic() + READY_S
    status = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"imgsearch watch exited with {proc.returncode}; its log:\n{log.read_text()[-4000:]}")
        if service_file.exists():
            url = json.loads(service_file.read_text())["url"]
            status = _status(url)
            vectors_done = bool(status) and status["images"] == status["vectors"] == pictures
            if vectors_done and (not settled or _settled(status)):
                return url
        time.sleep(0.5)
    pytest.fail(f"imgsearch watch not ready after {READY_S} s (service.json at {service_file}: "
                f"{service_file.exists()}; last status: {status}); its log:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("browser")
    photos, home, log = root / "photos", root / "home", root / "service.log"
    pictures = write_examples(photos)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "imgsearch.cli.app", "watch", str(photos), "--home", str(home),
               "--models", "tiny", "--port", "0"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        service_file = Settings(home=home, models="tiny").service_file
        settled = bool(os.environ.get("IMGSEARCH_SCREENSHOT"))  # the screenshot shows captions
        url = _wait_ready(proc, service_file, log, pictures, settled)
        yield Service(url, photos, pictures)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"imgsearch watch did not stop on SIGTERM; its log:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        pytest.fail("chromium not found: install Debian's browser with `apt-get install chromium` "
                    "(this test drives it through Playwright; `playwright install` is not used)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: `pip install playwright`")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, service: Service):  # Playwright types stay unnamed: it is imported lazily
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=service.url)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab
    context.close()
    assert not problems, f"the page logged errors: {problems}"


def cards(page):
    return page.locator("#results .card")


def search(page, text: str) -> None:
    page.goto("/")
    page.locator("#q").fill(text)
    page.locator("#q").press("Enter")
    cards(page).first.wait_for()


def score_lines(page) -> list[str]:
    return cards(page).locator(".scores").all_text_contents()


def test_words_put_a_yellow_star_first_and_the_url_carries_the_search(page, service: Service) -> None:
    search(page, QUERY)
    first = cards(page).first
    path = first.get_attribute("title")
    assert ("yellow", "star") in kinds(path), f"first result {path} is no yellow star"
    assert Path(path).parent == service.photos
    assert first.locator(".folder").text_content() == str(service.photos)
    assert first.locator(".caption").text_content().strip()
    assert "ITM" in first.locator(".scores").text_content()  # reranked by default
    params = parse_qs(urlsplit(page.url).query)
    assert params["q"] == [QUERY] and params["rerank"] == ["1"]
    assert int(params["n"][0]) >= cards(page).count() > 1
    # only the API's own image URLs, and the first thumbnail really loaded
    for src in cards(page).locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))"):
        assert re.fullmatch(r"api/images/\d+/thumbnail", src), src  # relative, as every API call of the page
    page.wait_for_function("() => document.querySelector('#results img').naturalWidth > 0")
    # the status line shows the service's counts
    counts = f"{service.images} pictures"
    page.wait_for_function(f"() => document.querySelector('#status-text').textContent.includes('{counts}')")
    if os.environ.get("IMGSEARCH_SCREENSHOT"):
        page.wait_for_function("() => [...document.querySelectorAll('#results img')].slice(0, 14)"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        first.hover()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))


def test_a_bookmarked_search_opens_with_the_keyboard_alone(page, service: Service) -> None:
    page.goto("/?" + "q=" + QUERY.replace(" ", "+") + "&rerank=1&k=20&n=30")
    cards(page).first.wait_for()
    assert page.locator("#q").input_value() == QUERY
    assert page.locator("#n").input_value() == "30"
    page.locator("#q").focus()
    for _ in range(10):  # Tab from the search box reaches the first result
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.index") == "0":
            break
    else:
        pytest.fail("Tab never reached the first result")
    paths = [cards(page).nth(i).get_attribute("title") for i in range(2)]
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    assert page.locator("#viewer-path").input_value() == paths[0]
    assert page.locator("#viewer-img").get_attribute("src") == cards(page).first.get_attribute("href")
    assert re.search(r"\d+ × \d+ px", page.locator("#viewer-size").text_content())
    page.keyboard.press("ArrowRight")
    assert page.locator("#viewer-path").input_value() == paths[1]
    page.keyboard.press("ArrowLeft")
    assert page.locator("#viewer-path").input_value() == paths[0]
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.index") == "0"


def test_more_like_this_starts_with_the_picture_or_its_kind(page, service: Service) -> None:
    search(page, QUERY)
    source = cards(page).first.get_attribute("title")
    cards(page).first.click()
    page.locator("#viewer-similar").click()
    page.wait_for_url(re.compile(r"[?&]like=\d+"))
    page.locator("#message", has_text="pictures like").wait_for()
    first = cards(page).first.get_attribute("title")
    assert first == source or kinds(first) == kinds(source), (source, first)
    page.go_back()
    page.locator("#message", has_text=QUERY).wait_for()
    assert cards(page).first.get_attribute("title") == source


def test_rerank_toggle_hides_and_shows_itm(page, service: Service) -> None:
    search(page, QUERY)
    reranked = score_lines(page)
    assert all("ITM" in line for line in reranked[:20])
    page.locator("#rerank").uncheck()
    page.locator("#message", has_text="CLIP only").wait_for()
    assert parse_qs(urlsplit(page.url).query)["rerank"] == ["0"]
    plain = score_lines(page)
    assert plain and not any("ITM" in line for line in plain)
    assert plain != reranked
    assert page.locator("#k").is_disabled()
    page.locator("#rerank").check()
    page.locator("#message", has_text="reranked").wait_for()
    assert parse_qs(urlsplit(page.url).query)["rerank"] == ["1"]
    assert all("ITM" in line for line in score_lines(page)[:20])


def test_a_narrow_window_still_shows_the_grid(page, service: Service) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    search(page, QUERY)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # no sideways scrolling
    boxes = [cards(page).nth(i).bounding_box() for i in range(2)]
    assert all(b and b["x"] >= 0 and b["x"] + b["width"] <= 400 for b in boxes)
    assert boxes[0]["y"] == boxes[1]["y"]  # still a grid: two cells side by side
    assert cards(page).first.locator("img").is_visible()
