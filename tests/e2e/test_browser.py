"""The search page in a real browser: Debian's chromium, driven by Playwright, against a real
`imgsearch watch` over the bundled example collection with the tiny models (60 pictures, and 6 more
in a subfolder so the folder filter has something to choose; file times spread over 2018-2023 so
the date filter has too). What is right is read from the example itself (each file is named after
its scene's canonical caption, its date is its file time), not hard-coded.

Searches by words are reranked and cut off at the service's default match probability, so a
query like "a yellow star" finds a few good matches (a line below them offers the weaker ones),
and nonsense like "a tax report" finds none.

Needs `pip install playwright` and `apt-get install chromium` (no `playwright install`: the
browser is the system's). With IMGSEARCH_SCREENSHOT set, also writes docs/screenshot-results.png.
"""

from __future__ import annotations

import base64
import json
import mimetypes
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
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from imgsearch.settings import Settings
from imgsearch.shapes.examples import write_examples
from imgsearch.shapes.world import parse

READY_S = 120
QUERY = "a yellow star"
NONSENSE = "a tax report"  # no picture of the example holds one, nor any word of it in its path
SUBFOLDER = "more"
NOT_RUNNING = "The imgsearch service is not running: start it with `imgsearch watch`"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot-results.png"


@dataclass(frozen=True)
class Service:
    url: str
    photos: Path
    images: int


def _spread_dates(photos: Path) -> None:
    """Noon on the 15th, years 2018-2023 and months all over: the pictures have no EXIF, so their
    file times are their dates."""
    for i, f in enumerate(sorted(p for p in photos.rglob("*") if p.is_file())):
        moment = time.mktime((2018 + i % 6, 1 + (i * 5) % 12, 15, 12, 0, 0, 0, 0, -1))
        os.utime(f, (moment, moment))


def date_of(path: str) -> datetime:
    return datetime.fromtimestamp(Path(path).stat().st_mtime)


def caption_of(path: str | Path) -> str:
    """An example picture's canonical caption, read from its file name (`005-large-yellow-star.png`:
    the example writer names each file after its scene's caption): "a large yellow star"."""
    return "a " + Path(path).stem.split("-", 1)[1].replace("-", " ")


def kinds(path: str) -> set[tuple[str, str]]:
    """(colour, shape) of every object in an example picture, read from its file name."""
    query = parse(caption_of(path))
    return {(o["colour"], o["shape"]) for o in (query.first, query.second) if o}


def _status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "/api/status", timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def api_search(url: str, **params: object) -> list[dict]:
    """The service's own answer to a search, to compare the page with."""
    with urllib.request.urlopen(f"{url}/api/search?{urlencode(params, doseq=True)}", timeout=60) as response:
        return json.load(response)["hits"]


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
    pictures = write_examples(photos) + write_examples(photos / SUBFOLDER, count=6, seed=11)
    _spread_dates(photos)
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
    tab.expected_errors = []  # patterns of what a test makes fail on purpose (the browser logs it)
    yield tab
    context.close()
    unexpected = [p for p in problems if not any(re.search(e, p) for e in tab.expected_errors)]
    assert not unexpected, f"the page logged errors: {unexpected}"


def cards(page):
    return page.locator("#results .card")


def titles(page) -> list[str]:
    return cards(page).evaluate_all("cards => cards.map(c => c.title)")


def query_of(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def message(page) -> str:
    return page.locator("#message").text_content()


def wait_message(page, text: str) -> None:
    page.locator("#message", has_text=text).wait_for()


def search(page, text: str) -> None:
    page.goto("/")
    page.locator("#q").fill(text)
    page.locator("#q").press("Enter")
    cards(page).first.wait_for()
    wait_message(page, "Showing")


def retype(page, text: str, wait_for: str) -> None:
    """A new search in the box, on a page that already shows one."""
    page.locator("#q").fill(text)
    page.locator("#q").press("Enter")
    wait_message(page, wait_for)


def score_lines(page) -> list[str]:
    return cards(page).locator(".scores").all_text_contents()


def colour_count(paths: list[str], colour: str) -> int:
    return sum(any(c == colour for c, _ in kinds(p)) for p in paths)


def example(service: Service, index: int) -> Path:
    return sorted(p for p in service.photos.iterdir() if p.is_file())[index]


def give_picture(page, path: Path, how: str) -> None:
    """Paste a picture, or drop it onto the page, as a browser does: a File in a DataTransfer."""
    page.evaluate("""([data, name, type, how]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type }));
        const init = { bubbles: true, cancelable: true };
        if (how === "paste") {
            document.dispatchEvent(new ClipboardEvent("paste", { ...init, clipboardData: transfer }));
        } else {
            const drop = new DragEvent("drop", { ...init, dataTransfer: transfer });
            document.querySelector("main").dispatchEvent(drop);
        }
    }""", [base64.b64encode(path.read_bytes()).decode(), path.name, mimetypes.guess_type(path.name)[0],
           how])


def cutoff(page):
    return page.locator("#results .cutoff")


def show_weaker(page, keyboard: bool = False) -> None:
    """Press "Show weaker matches" and wait for them (the button goes once they are shown)."""
    before = cards(page).count()
    button = cutoff(page).get_by_role("button", name="Show weaker matches")
    if keyboard:
        button.focus()
        page.keyboard.press("Enter")
    else:
        button.click()
    page.wait_for_function("n => document.querySelectorAll('#results .card').length > n"
                           " || document.querySelector('#results .cutoff-note')", arg=before)
    cutoff(page).get_by_role("button").wait_for(state="detached")


def page_through(page) -> None:
    """Press "more" until every result is shown (the window nearing it loads pages as well)."""
    for _ in range(40):
        if page.locator("#more").is_hidden():
            return
        before = cards(page).count()
        page.evaluate("document.querySelector('#more').click()")
        page.wait_for_function("n => document.querySelectorAll('#results .card').length > n"
                               " || document.querySelector('#more').hidden", arg=before)
    pytest.fail("still more results after 40 pages")


def test_words_put_a_yellow_star_first_and_the_url_carries_the_search(page, service: Service) -> None:
    search(page, QUERY)
    first = cards(page).first
    path = first.get_attribute("title")
    assert ("yellow", "star") in kinds(path), f"first result {path} is no yellow star"
    assert service.photos in Path(path).parents
    assert first.locator(".folder").text_content() == str(Path(path).parent)
    assert first.locator(".caption").text_content().strip()
    assert first.locator("img").get_attribute("alt") == ""  # the caption is written right below it
    assert "ITM" in first.locator(".scores").text_content()  # reranked by default
    # the overlay keeps each "label value" on one line
    assert set(first.locator(".scores .pair").evaluate_all(
        "pairs => pairs.map(p => getComputedStyle(p).whiteSpace)")) == {"nowrap"}
    params = query_of(page)
    assert params["q"] == [QUERY] and params["rerank"] == ["1"] and params["n"] == ["40"]
    # only the good matches (a short page: no more of them), the line below them
    good = cards(page).count()
    assert 0 < good < 40
    assert re.match(rf"Showing {good} good match(es)? for “a yellow star” \(top 20 reranked with ITM\)", message(page))
    assert cutoff(page).is_visible() and page.locator("#more").is_hidden()
    # only the API's own image URLs, and the first thumbnail really loaded
    for src in cards(page).locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))"):
        assert re.fullmatch(r"api/images/\d+/thumbnail", src), src  # relative, as every API call of the page
    page.wait_for_function("() => document.querySelector('#results img').naturalWidth > 0")
    # the status line shows the service's counts; the example pictures have no camera: no camera filter
    counts = f"{service.images} pictures"
    page.wait_for_function(f"() => document.querySelector('#status-text').textContent.includes('{counts}')")
    assert page.locator("#camera-filter").is_hidden()
    assert page.locator("#folders").is_visible()
    if os.environ.get("IMGSEARCH_SCREENSHOT"):
        page.wait_for_function("() => [...document.querySelectorAll('#results img')].slice(0, 14)"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        first.hover()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))


def search_requests(page) -> list[dict[str, list[str]]]:
    """The query of every GET api/search the page sends from now on."""
    sent: list[dict[str, list[str]]] = []
    page.on("request",
            lambda r: sent.append(parse_qs(urlsplit(r.url).query)) if "/api/search?" in r.url else None)
    return sent


def shown_weaker(page) -> tuple[str, int]:
    """The line above the grid and how many weaker results are shown, read at one moment (a
    window with room left may load the next page meanwhile)."""
    said, weaker = page.evaluate("() => [document.querySelector('#message').textContent,"
                                 " document.querySelectorAll('#results .card.weak').length]")
    return said, weaker


def percent(card) -> int:
    return int(card.locator(".match").text_content().split("%")[0])


def test_few_good_matches_end_at_a_line_and_the_weaker_ones_follow_below_it(page, service: Service) -> None:
    sent = search_requests(page)
    search(page, QUERY)
    line = cutoff(page)
    line.wait_for()
    # asked why, with the service's own cutoff: only the likely matches came back, fewer than a page
    assert sent[0]["explain"] == ["true"] and sent[0]["mode"] == ["hybrid"] and "min_match" not in sent[0]
    expected = api_search(service.url, q=QUERY, rerank_k=20, limit=40)
    good = titles(page)
    assert good == [h["path"] for h in expected] and 0 < len(good) < 40
    assert ("yellow", "star") in kinds(good[0])
    assert line.locator(".cutoff-text").text_content() == "Good matches above this line"
    assert page.locator("#more").is_hidden()  # a short page: no more matches to page to
    # each card says how likely it matches, as the service does: at least its cutoff (0.5)
    for i, hit in enumerate(expected):
        assert percent(cards(page).nth(i)) == round(hit["match"] * 100) >= 50
    sent.clear()
    show_weaker(page, keyboard=True)
    # the same search without the cutoff, from the top; what was shown already is not repeated
    assert sent and sent[0]["min_match"] == ["0"] and sent[0]["q"] == [QUERY]
    assert sent[0]["offset"] == ["0"] and sent[0]["explain"] == ["true"]
    shown = titles(page)
    assert shown[:len(good)] == good and len(shown) == len(set(shown)) > len(good)
    # the keyboard goes on to the first of them
    assert page.evaluate("document.activeElement.dataset.index") == str(len(good))
    assert set(shown[len(good):]) <= {h["path"] for h in api_search(service.url, q=QUERY, rerank_k=20,
                                                                    limit=len(good) + 40, min_match=0)}
    # below the line (in the page's order, right after it), drawn dimmed; the good ones above it
    order = page.evaluate("""() => [...document.querySelectorAll('#results > li')].map(li =>
        li.classList.contains('cutoff') ? 'line' : li.querySelector('.card').classList.contains('weak') ? 'weak' : 'good')""")
    assert order == ["good"] * len(good) + ["line"] + ["weak"] * (len(shown) - len(good))
    weak = page.locator("#results .card.weak").last  # (the first has the focus: drawn in full)
    assert float(weak.evaluate("c => getComputedStyle(c).opacity")) < 1
    assert float(cards(page).first.evaluate("c => getComputedStyle(c).opacity")) == 1
    assert line.locator(".cutoff-text").is_visible()  # the line stays; its button went
    said, weaker = shown_weaker(page)
    assert said.startswith(f"Showing {len(good)} good match{'es' if len(good) > 1 else ''} and {weaker} weaker ones"
                           " for “a yellow star”"), said
    # the weaker ones page on as the matches did: all pictures, each once
    page_through(page)
    shown = titles(page)
    assert len(shown) == len(set(shown)) == service.images


def test_nonsense_matches_no_picture_and_still_offers_the_weaker_ones(page, service: Service) -> None:
    assert api_search(service.url, q=NONSENSE, rerank_k=20, limit=40) == []  # as the service says
    page.goto("/")
    page.locator("#q").fill(NONSENSE)
    page.locator("#q").press("Enter")
    wait_message(page, f"No picture matches for “{NONSENSE}”")
    line = cutoff(page)
    assert cards(page).count() == 0
    assert line.locator(".cutoff-text").text_content() == "No picture matches"
    assert page.locator("#more").is_hidden()
    show_weaker(page)
    said, weaker = shown_weaker(page)
    assert weaker >= 40 and cards(page).count() == weaker  # (a page of) the closest ones, all weaker
    assert said.startswith(f"No picture matches, showing {weaker} weaker ones for “{NONSENSE}”"), said
    badges = page.locator("#results .card .match").all_text_contents()  # those reranked say how likely
    assert badges and all(int(b.split("%")[0]) < 50 for b in badges), badges


def test_a_result_says_why_it_came_back_on_hover_and_focus(page, service: Service) -> None:
    search(page, QUERY)
    first = cards(page).first
    why = page.locator("#" + first.get_attribute("aria-describedby"))  # the card's description
    assert why.get_attribute("role") == "tooltip"
    assert why.is_hidden()
    first.hover()
    why.wait_for(state="visible")
    text = why.text_content()
    hit = api_search(service.url, q=QUERY, rerank_k=20, limit=40, explain="true")[0]  # as the page asked
    assert hit["path"] == first.get_attribute("title")
    assert f"CLIP {hit['explain']['clip']:.2f}" in text and f"match {hit['match']:.2f}" in text
    ranks = ", ".join(f"{by} #{rank}" for by, rank in hit["explain"]["ranks"].items() if rank)
    assert f"found by {ranks}" in text
    if hit["explain"]["names_match"]:
        assert "every word in its name or folders" in text
    # the keyboard shows it too
    page.mouse.move(0, 0)
    why.wait_for(state="hidden")
    page.locator("#q").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.index") == "0":
            break
    else:
        pytest.fail("Tab never reached the first result")
    why.wait_for(state="visible")
    # a weaker one says what it holds of the words, and the large view says why as well
    show_weaker(page)
    weak = page.locator("#results .card.weak").first
    weak.hover()
    weak_why = page.locator("#" + weak.get_attribute("aria-describedby"))
    weak_why.wait_for(state="visible")
    assert "CLIP" in weak_why.text_content() and "match" in weak_why.text_content()
    weak.click()
    page.locator("#viewer").wait_for(state="visible")
    assert page.locator("#viewer-why").text_content() == weak_why.text_content()


def test_the_mode_selector_sends_the_mode_and_keeps_it_in_the_url(page, service: Service) -> None:
    sub = sorted(p for p in (service.photos / SUBFOLDER).iterdir())
    sent = search_requests(page)
    page.goto("/")
    wait_message(page, "Describe the picture")
    page.locator("#mode").select_option("text")
    assert query_of(page)["mode"] == ["text"]
    # the subfolder's name: text mode finds the words in folder names, every picture of it
    retype(page, SUBFOLDER, f"for “{SUBFOLDER}” (found by words")
    assert sent[-1]["mode"] == ["text"] and sent[-1]["q"] == [SUBFOLDER]
    assert query_of(page)["mode"] == ["text"] and query_of(page)["q"] == [SUBFOLDER]
    assert sorted(titles(page)) == [str(p) for p in sub]
    first = cards(page).first
    first.hover()
    text = page.locator("#" + first.get_attribute("aria-describedby")).text_content()
    assert "found by text #" in text and "vector" not in text and "every word in its name or folders" in text
    # vector mode: CLIP alone, which reads no folder names
    with page.expect_request(lambda r: "/api/search?" in r.url) as request:
        page.locator("#mode").select_option("vector")
    assert parse_qs(urlsplit(request.value.url).query)["mode"] == ["vector"]
    wait_message(page, "found by CLIP")
    assert query_of(page)["mode"] == ["vector"]
    vector = titles(page)
    assert sorted(vector) != [str(p) for p in sub]
    for i in range(len(vector)):
        cards(page).nth(i).hover()
        assert "text #" not in page.locator("#" + cards(page).nth(i).get_attribute("aria-describedby")).text_content()
    page.reload()  # bookmarked: the mode comes back with the search
    wait_message(page, "found by CLIP")
    assert page.locator("#mode").input_value() == "vector"
    page.go_back()
    wait_message(page, "found by words")
    assert page.locator("#mode").input_value() == "text"
    # hybrid, the default, is not written into the URL
    page.locator("#mode").select_option("hybrid")
    wait_message(page, f"for “{SUBFOLDER}” (top 20 reranked with ITM)")
    assert "mode" not in query_of(page) and sent[-1]["mode"] == ["hybrid"]
    # text mode needs words: with a picture alone it says so, and sends nothing
    page.goto(f"/?like={cards(page).first.get_attribute('data-id')}&mode=text")
    wait_message(page, "A text search looks for words")
    assert page.locator("#results .card").count() == 0


def test_a_bookmarked_search_opens_with_the_keyboard_alone(page, service: Service) -> None:
    page.goto("/?" + "q=" + QUERY.replace(" ", "+") + "&rerank=1&k=20&n=30")
    cards(page).first.wait_for()
    assert page.locator("#q").input_value() == QUERY
    assert page.locator("#n").input_value() == "30"
    cutoff(page).wait_for()  # the good matches, all of them on this first page
    assert 2 <= cards(page).count() < 30
    page.locator("#q").focus()
    for _ in range(20):  # Tab from the search box, over the filters, reaches the first result
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
    assert page.locator("#viewer-name").text_content() == Path(paths[0]).name
    # the path box shows the end of the path (the file name), not its start
    assert page.evaluate("(() => { const p = document.querySelector('#viewer-path');"
                         " return p.scrollLeft + p.clientWidth >= p.scrollWidth - 1; })()")
    assert page.locator("#viewer-img").get_attribute("src") == cards(page).first.get_attribute("href")
    assert re.search(r"\d+ × \d+ px", page.locator("#viewer-size").text_content())
    page.keyboard.press("ArrowRight")
    assert page.locator("#viewer-path").input_value() == paths[1]
    page.keyboard.press("ArrowLeft")
    assert page.locator("#viewer-path").input_value() == paths[0]
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.index") == "0"


def test_back_closes_the_large_view_and_keeps_the_search(page, service: Service) -> None:
    search(page, QUERY)
    url, shown = page.url, titles(page)
    cards(page).nth(1).click()
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    assert page.url == url
    page.go_back()  # a phone's Back button
    viewer.wait_for(state="hidden")
    assert page.url == url and titles(page) == shown
    page.go_forward()  # and Forward opens it again
    viewer.wait_for(state="visible")
    assert page.locator("#viewer-path").input_value() == shown[1]
    page.locator("#viewer-close").click()
    viewer.wait_for(state="hidden")
    # closing leaves the view's own history entry (an asynchronous Back; a Back pressed before it
    # lands is one the browser may merge with it)
    page.wait_for_function("history.state?.viewer == null")
    assert page.url == url
    page.go_back()  # the view took its history entry with it: Back now leaves the search
    wait_message(page, "Describe the picture")
    assert page.locator("#q").input_value() == "" and cards(page).count() == 0


def test_a_minus_word_leaves_pictures_out_and_goes_into_the_url(page, service: Service) -> None:
    search(page, "a star")
    plain = titles(page)[:10]
    retype(page, "a star -green", "without “green”")
    params = query_of(page)
    assert params["q"] == ["a star"] and params["not"] == ["green"]
    without = titles(page)[:10]
    assert without != plain
    assert colour_count(without, "green") < colour_count(plain, "green"), (plain, without)
    retype(page, 'a star "-a green star"', "without “a green star”")
    assert query_of(page)["not"] == ["a green star"]
    assert colour_count(titles(page)[:10], "green") < colour_count(plain, "green")
    page.reload()  # the box is rebuilt from the URL
    wait_message(page, "without “a green star”")
    assert page.locator("#q").input_value() == 'a star "-a green star"'
    # only what to leave out: said plainly, and the results stay
    shown = titles(page)
    retype(page, "-green", "Say what to look for as well")
    assert titles(page) == shown


def test_a_pasted_or_picked_picture_finds_itself_first_and_takes_words_too(page, service: Service) -> None:
    picture = example(service, 7)
    page.goto("/")
    wait_message(page, "Describe the picture")
    give_picture(page, picture, "paste")
    page.locator("#terms .chip", has_text=picture.name).wait_for()
    wait_message(page, f"like {picture.name}")
    assert titles(page)[0] == str(picture)
    # "like this, but …": the words and the picture go together, the bytes as base64 in a POST
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/search")) as sent:
        retype(page, "a blue circle", "for “a blue circle”, like")
    terms = sent.value.post_data_json["terms"]
    assert [t["kind"] for t in terms] == ["text", "image"] and terms[0]["text"] == "a blue circle"
    assert base64.b64decode(terms[1]["data"]) == picture.read_bytes()
    assert query_of(page)["q"] == ["a blue circle"]
    page.go_back()  # the picture alone again: Back keeps the picture (this tab still holds it)
    wait_message(page, f"Showing 40 results like {picture.name}")
    assert page.locator("#q").input_value() == "" and titles(page)[0] == str(picture)
    # the chip takes it away again
    page.locator("#terms .chip-remove").click()
    wait_message(page, "Describe the picture")
    assert page.locator("#terms").is_hidden()
    # the file picker, and a drop onto the page
    other = example(service, 12)
    page.set_input_files("#picture-file", str(other))
    wait_message(page, f"like {other.name}")
    assert titles(page)[0] == str(other)
    page.locator("#terms .chip-remove").click()
    wait_message(page, "Describe the picture")
    third = example(service, 21)
    give_picture(page, third, "drop")
    wait_message(page, f"like {third.name}")
    assert titles(page)[0] == str(third)


def test_more_like_this_adds_the_picture_to_the_words(page, service: Service) -> None:
    search(page, QUERY)
    source = cards(page).first.get_attribute("title")
    source_id = cards(page).first.get_attribute("data-id")
    cards(page).first.click()
    page.locator("#viewer-similar").click()
    page.wait_for_url(re.compile(r"[?&]like=\d+"))
    page.locator("#viewer").wait_for(state="hidden")
    params = query_of(page)
    assert params["like"] == [source_id] and params["q"] == [QUERY]  # added to the words, not instead
    wait_message(page, f"like {Path(source).name}")
    page.locator("#terms .chip", has_text=Path(source).name).wait_for()
    first = cards(page).first.get_attribute("title")
    assert first == source or kinds(first) == kinds(source), (source, first)
    page.locator("#terms .chip-remove").click()  # the chip takes the picture out again
    wait_message(page, "for “a yellow star” (top")
    assert "like" not in query_of(page) and page.locator("#terms").is_hidden()
    page.go_back()
    page.locator("#terms .chip").wait_for()
    page.go_back()  # the large view's entry became the "like" search: Back is the words alone
    page.wait_for_url(re.compile(r"^[^#]*\?q=a\+yellow\+star&rerank"))
    wait_message(page, "for “a yellow star” (top")
    assert cards(page).first.get_attribute("title") == source
    # "more like this" alone, from a link: the picture itself comes first
    page.goto(f"/?like={source_id}")
    wait_message(page, f"like {Path(source).name}")
    assert cards(page).first.get_attribute("title") == source


def test_a_folder_from_the_facets_limits_the_results_to_it(page, service: Service) -> None:
    sub = str(service.photos / SUBFOLDER)
    page.goto("/")
    page.locator("#folders summary").click()
    row = page.locator("#folder-list label", has=page.locator(f'input[value="{sub}"]'))
    assert row.locator(".count").text_content() == "6"
    assert page.locator("#folder-list input").count() == 2  # the root and its one subfolder
    row.locator("input").check()
    wait_message(page, f"in {SUBFOLDER}")  # no words: the folder's pictures, newest first
    assert "newest first" in message(page)
    assert query_of(page)["in"] == [sub]
    assert page.locator("#folders-summary").text_content() == SUBFOLDER
    shown = titles(page)
    assert len(shown) == 6 and all(Path(p).parent == service.photos / SUBFOLDER for p in shown)
    dates = [date_of(p) for p in shown]
    assert dates == sorted(dates, reverse=True)
    page.keyboard.press("Escape")
    # a picture of the subfolder, by its own caption: its name holds every word, so it matches
    wanted = caption_of(sorted(shown)[0])
    retype(page, wanted, f"for “{wanted}”, in {SUBFOLDER}")
    words = titles(page)
    assert sorted(shown)[0] in words
    assert 0 < len(words) <= 6 and all(Path(p).parent == service.photos / SUBFOLDER for p in words)
    page.reload()  # bookmarked: the tick comes back with the facets
    wait_message(page, f"in {SUBFOLDER}")
    page.wait_for_function("sub => [...document.querySelectorAll('#folder-list input')]"
                           ".some(box => box.value === sub && box.checked)", arg=sub)
    assert sorted(titles(page)) == sorted(words)


def test_cameras_from_the_facets_filter_by_camera(page, service: Service) -> None:
    """The example pictures have no EXIF (no cameras, so no camera filter: see the first test);
    here the facets name one, as a real collection's would."""
    real = json.load(urllib.request.urlopen(service.url + "/api/facets", timeout=5))
    page.route("**/api/facets", lambda route: route.fulfill(
        json={**real, "cameras": [{"name": "Canon EOS 5D", "count": 12}]}))
    search(page, QUERY)
    camera = page.locator("#camera")
    camera.wait_for()
    assert camera.locator("option").all_text_contents() == ["any", "Canon EOS 5D (12)"]
    with page.expect_request(lambda r: "/api/search?" in r.url) as sent:
        camera.select_option("Canon EOS 5D")
    assert parse_qs(urlsplit(sent.value.url).query)["camera"] == ["Canon EOS 5D"]
    wait_message(page, "No picture matches for “a yellow star”, camera Canon EOS 5D")  # no picture here has it
    assert query_of(page)["camera"] == ["Canon EOS 5D"] and cards(page).count() == 0
    page.locator("#clear-filters").click()
    wait_message(page, "good match")
    assert "camera" not in query_of(page)


def test_dates_and_sort_filter_and_order_the_pictures(page, service: Service) -> None:
    page.goto("/")
    wait_message(page, "Describe the picture")
    page.locator("#from").fill("2019")
    page.locator("#until").fill("2020-06")
    page.locator("#until").press("Enter")
    wait_message(page, "dated 2019 to 2020-06")
    expected = sorted(str(p) for p in service.photos.rglob("*.*")
                      if datetime(2019, 1, 1) <= date_of(str(p)) < datetime(2020, 7, 1))
    shown = titles(page)
    assert 0 < len(shown) < service.images and sorted(shown) == expected
    assert [date_of(p) for p in shown] == sorted((date_of(p) for p in shown), reverse=True)  # newest first
    params = query_of(page)
    assert params["from"] == ["2019"] and params["until"] == ["2020-06"]
    page.locator("#sort").select_option("oldest")
    wait_message(page, "oldest first")
    assert query_of(page)["sort"] == ["oldest"]
    assert [date_of(p) for p in titles(page)] == sorted(date_of(p) for p in shown)
    # words sorted by date: the good matches, newest first
    page.locator("#from").fill("")
    page.locator("#until").fill("")
    page.locator("#sort").select_option("newest")
    retype(page, "a star", "“a star” (top 20 reranked with ITM, newest first)")
    dates = [date_of(p) for p in titles(page)]
    assert len(dates) > 2 and dates == sorted(dates, reverse=True)
    # a date that is none: said at the box, nothing sent
    url = page.url
    page.locator("#from").fill("20x9")
    page.locator("#from").press("Enter")
    assert page.locator("#from").evaluate("box => box.validity.valid") is False
    assert page.url == url


def test_pages_follow_without_repeats(page, service: Service) -> None:
    """The good matches page until a short page (the cutoff's end), then the weaker ones page on
    below the line: every picture once."""
    total = _status(service.url)["images"]
    matches = {h["path"] for h in api_search(service.url, q="a star", rerank_k=20, limit=100)}
    assert 10 < len(matches) < total  # more than a page of good matches, and fewer than all
    page.goto("/?q=a+star&rerank=1&k=20&n=10")
    cards(page).first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('#results .card').length >= 10")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # scrolling down brings more
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 10")
    page_through(page)
    cutoff(page).wait_for()
    shown = titles(page)
    assert len(shown) == len(set(shown)) and set(shown) == matches
    wait_message(page, f"Showing {len(matches)} good matches for “a star”")
    show_weaker(page)
    page_through(page)
    shown = titles(page)
    assert len(shown) == len(set(shown)) == total and set(shown[:len(matches)]) == matches
    wait_message(page, f"Showing {len(matches)} good matches and {total - len(matches)} weaker ones")
    # words sorted by date page the same way: every picture once
    page.goto("/?q=a+star&sort=newest&rerank=1&k=20&n=5")
    wait_message(page, "newest first")
    first_page = [date_of(p) for p in titles(page)[:5]]
    assert first_page == sorted(first_page, reverse=True)
    page_through(page)
    cutoff(page).wait_for()
    assert set(titles(page)) == matches
    show_weaker(page)
    page_through(page)
    shown = titles(page)
    assert len(shown) == len(set(shown)) == total


def test_rerank_toggle_hides_and_shows_itm(page, service: Service) -> None:
    search(page, QUERY)
    reranked = score_lines(page)
    assert all("ITM" in line for line in reranked[:20])
    page.locator("#rerank").uncheck()
    wait_message(page, "CLIP and words, not reranked")  # and no cutoff: every picture, best first
    assert query_of(page)["rerank"] == ["0"]
    plain = score_lines(page)
    assert plain and not any("ITM" in line for line in plain)
    assert plain != reranked
    assert page.locator("#k").is_disabled()
    assert float(page.locator("#k").evaluate("box => getComputedStyle(box).opacity")) < 1  # looks disabled
    page.locator("#rerank").check()
    wait_message(page, "reranked")
    assert query_of(page)["rerank"] == ["1"]
    assert all("ITM" in line for line in score_lines(page)[:20])


def test_numbers_past_their_bounds_are_clamped_before_sending(page, service: Service) -> None:
    search(page, QUERY)
    sent: list[dict[str, list[str]]] = []
    page.on("request",
            lambda r: sent.append(parse_qs(urlsplit(r.url).query)) if "/api/search?" in r.url else None)
    page.locator("#n").fill("20000")
    page.locator("#k").fill("5000")
    page.locator("#q").press("Enter")
    wait_message(page, "top 1000 reranked")
    assert page.locator("#n").input_value() == "10000" and page.locator("#k").input_value() == "1000"
    params = query_of(page)
    assert params["n"] == ["10000"] and params["k"] == ["1000"]
    assert sent and all(int(s["limit"][0]) <= 10000 and int(s["rerank_k"][0]) <= 1000 for s in sent)
    cutoff(page).wait_for()
    show_weaker(page)  # the weaker ones as well: everything fits on one page of 10000
    assert cards(page).count() == service.images
    assert any(s.get("min_match") == ["0"] and s["limit"] == ["10000"] for s in sent), sent
    sent.clear()
    page.locator("#n").fill("0")
    page.locator("#k").fill("-5")
    page.locator("#q").press("Enter")
    wait_message(page, "not reranked")  # (one result a page: scrolling may load more at once)
    assert page.locator("#n").input_value() == "1" and page.locator("#k").input_value() == "0"
    assert any(s["limit"] == ["1"] and s["rerank_k"] == ["0"] for s in sent), sent
    assert all(1 <= int(s["limit"][0]) <= 10000 and 0 <= int(s["rerank_k"][0]) <= 1000 for s in sent)


def test_the_box_is_capped_and_an_error_keeps_the_results(page, service: Service) -> None:
    search(page, QUERY)
    shown = titles(page)
    page.locator("#q").fill("x" * 1500)
    assert len(page.locator("#q").input_value()) == 1000  # the API's limit on a query
    page.expected_errors.append(r"status of 422")
    page.route("**/api/search?*", lambda route: route.fulfill(
        status=422, json={"detail": "the limit (how many results) must be between 1 and 10,000 (got 0)"}))
    retype(page, "a red circle", "Search failed: the limit (how many results) must be between 1 and 10,000")
    assert titles(page) == shown


def test_a_stopped_service_is_said_plainly_and_the_results_stay(page, service: Service) -> None:
    search(page, QUERY)
    shown = titles(page)
    page.expected_errors.append(r"Failed to load resource|ERR_FAILED")
    page.route("**/api/**", lambda route: route.abort())  # as if nothing listened there any more
    retype(page, "a red circle", NOT_RUNNING)
    assert titles(page) == shown
    page.locator("#status-text", has_text=NOT_RUNNING).wait_for(timeout=10_000)
    page.unroute("**/api/**")  # back again: the status line and searches recover
    page.locator("#status-text", has_text=f"{service.images} pictures").wait_for(timeout=10_000)
    retype(page, "a red circle", "for “a red circle”")


def test_the_progress_bar_counts_the_whole_job(page, service: Service) -> None:
    """The service reports one batch at a time (32 of 46, then 0 of 14): the bar adds them up; a
    one-off wait within a phase (a build) is said beside it."""
    real = _status(service.url)
    answers = [
        {"activity": {"state": "events", "phase": "vectors", "done": 20, "total": 32, "queued": 14}},
        {"activity": {"state": "events", "phase": "vectors", "done": 5, "total": 14, "queued": 0}},
        {"activity": {"state": "captions", "phase": "captions", "done": 0, "total": 32, "queued": 0,
                      "note": "building a faster vision tower for captions on this CPU, once for this model"},
         "pending_captions": 46},
        {"activity": {"state": "captions", "phase": "captions", "done": 10, "total": 32, "queued": 0},
         "pending_captions": 36},
        {"activity": {"state": "captions", "phase": "captions", "done": 2, "total": 14, "queued": 0},
         "pending_captions": 12},
    ]
    calls = iter(answers)

    def status(route) -> None:
        route.fulfill(json={**real, **next(calls, {"activity": {**real["activity"], "state": "idle"}})})

    page.route("**/api/status", status)
    page.goto("/")
    bar = page.locator("#status-progress")
    for value, maximum, text in [(20, 46, "Indexing changed pictures: 20 of 46, 14 more waiting"),
                                 (37, 46, "Indexing changed pictures: 37 of 46"),
                                 (0, 46, "Writing captions: 0 of 46 (building a faster vision tower for captions "
                                         "on this CPU, once for this model…)"),
                                 (10, 46, "Writing captions: 10 of 46"),
                                 (34, 46, "Writing captions: 34 of 46")]:
        page.locator("#status-text", has_text=text).wait_for(timeout=10_000)
        assert (bar.evaluate("b => [b.value, b.max]")) == [value, maximum], text
    page.wait_for_function("() => document.querySelector('#status-progress').hidden", timeout=10_000)


def test_a_narrow_window_still_shows_the_grid(page, service: Service) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    search(page, QUERY)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # no sideways scrolling
    boxes = [cards(page).nth(i).bounding_box() for i in range(2)]
    assert all(b and b["x"] >= 0 and b["x"] + b["width"] <= 400 for b in boxes)
    assert boxes[0]["y"] == boxes[1]["y"]  # still a grid: two cells side by side
    assert cards(page).first.locator("img").is_visible()
    page.locator("#folders summary").click()
    panel = page.locator("#folders .menu-panel").bounding_box()
    assert panel and panel["x"] >= 0 and panel["x"] + panel["width"] <= 400
    assert page.evaluate("document.documentElement.scrollWidth") <= 400


def test_pictures_indexed_while_results_are_open_are_offered(page, service: Service, tmp_path: Path) -> None:
    """Last: it adds a picture to the collection the other tests count."""
    search(page, QUERY)
    write_examples(tmp_path, count=1, seed=99)
    new = next(tmp_path.iterdir())
    shutil.move(new, service.photos / f"900-{new.name.split('-', 1)[1]}")
    fresh = page.locator("#fresh")
    fresh.wait_for(timeout=60_000)
    assert fresh.text_content() == "1 new picture — refresh"
    # The refreshed search itself, not a changed message: the new picture need not match, and the
    # message (count, query, time in whole ms) can come back exactly as it was.
    with page.expect_response(lambda r: "/api/search" in r.url and r.ok) as answered:
        fresh.click()
    fresh.wait_for(state="hidden")
    assert answered.value.json()["hits"]
    page.wait_for_function("() => !document.querySelector('#results').hasAttribute('aria-busy')"
                           " && document.querySelector('#message').textContent.startsWith('Showing')")
    page.locator("#status-text", has_text=f"{service.images + 1} pictures").wait_for(timeout=10_000)


def test_a_tag_under_a_picture_narrows_the_search_to_pictures_with_it(page, service: Service) -> None:
    search(page, QUERY)
    first = page.locator("#results .tags .tag").first
    label = first.text_content()
    first.click()
    page.wait_for_url(re.compile(r"[?&]tag="))
    assert query_of(page)["tag"] == [label] and query_of(page)["q"] == [QUERY]
    wait_message(page, f"tagged {label}")
    page.locator("#terms .chip", has_text=label).wait_for()
    for card_id in cards(page).evaluate_all("cards => cards.map(c => c.dataset.id)"):
        shown = json.load(urllib.request.urlopen(f"{service.url}/api/images/{card_id}", timeout=5))
        assert label in shown["tags"]
    page.locator("#terms .chip-remove").click()  # the chip takes the tag out again
    wait_message(page, f"for “{QUERY}” (top")
    assert "tag" not in query_of(page)


def test_pictures_teach_a_concept_in_the_large_view_and_the_menu_searches_by_it(page, service: Service) -> None:
    search(page, QUERY)
    assert page.locator("#concept-filter").is_hidden()  # nothing taught yet
    taught = []
    for i in range(min(3, cards(page).count())):
        cards(page).nth(i).click()
        page.locator("#teach-name").fill("yellowish")
        page.locator("#teach button").click()
        page.locator("#viewer-note", has_text=f"yellowish now has {i + 1} example").wait_for()
        taught.append(cards(page).nth(i).get_attribute("title"))
        page.keyboard.press("Escape")
        page.locator("#viewer").wait_for(state="hidden")
    page.locator("#concept-filter").wait_for()
    page.locator("#concept").select_option("yellowish")
    page.wait_for_url(re.compile(r"[?&]concept=yellowish"))
    wait_message(page, "of the concept yellowish")
    shown = titles(page)
    assert shown and set(taught) & set(shown)
    page.locator("#terms .chip", has_text="yellowish").wait_for()


def test_the_duplicates_view_lists_the_groups_or_says_there_are_none(page, service: Service) -> None:
    page.goto("/")
    page.locator("#open-dupes").click()
    body = page.locator("#dupes .dupes-body")
    body.locator("p", has_text=re.compile(r"among \d+ pictures")).wait_for()
    found = json.load(urllib.request.urlopen(service.url + "/api/dupes", timeout=60))
    assert f"among {found['pictures']} pictures" in body.text_content()
    assert page.locator("#dupes .dupe-group").count() == len(found["groups"])
    page.locator("#dupes .dupes-head button").click()
    page.locator("#dupes").wait_for(state="hidden")
