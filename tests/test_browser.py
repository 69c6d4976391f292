"""The shoppers' UI in a real browser: Debian's chromium driven by Playwright, against a
live Vitrine (its own process, embedded mode, the demo model, a small demo shop).

Screenshots of the search and product pages, desktop and phone, are written to a
temporary folder, or to ``$VITRINE_SCREENSHOTS_DIR`` (``make screenshots`` points it at
``docs/screenshots/``, which the README shows).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.accessibility import axe_violations
from tests.live import ADMIN_PASSWORD, TEMPLATE_PRODUCTS, LiveVitrine

# One process runs them all (they share a server): make test spreads the suite over two.
pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.xdist_group("browser")]

SHOP_SIZE = TEMPLATE_PRODUCTS
SCREENSHOTS = Path()  # where screenshots go: set by the screenshots fixture
PATIENCE_MS = 60_000  # generous: a slow machine must not fail these tests
expect.set_options(timeout=PATIENCE_MS)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Site(LiveVitrine):
    def products_by_id(self) -> dict[int, dict]:
        return {product["id"]: product for product in self.products()}

    def products(self) -> list[dict]:
        with sqlite3.connect(self.data_dir / "vitrine.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT id, title, price, url, attributes FROM catalog_product ORDER BY id").fetchall()
        return [{**dict(row), "attributes": json.loads(row["attributes"])} for row in rows]


@pytest.fixture(scope="module")
def site(live_template, tmp_path_factory, standin_server):
    # "Imagine it" on (the stand-in image API on loopback): its panel is part of the page
    # every test here, the accessibility and Content-Security-Policy ones included, sees.
    site = Site.from_template(
        live_template,
        tmp_path_factory.mktemp("site"),
        VITRINE_IMAGE_API_URL=standin_server.url,
        VITRINE_IMAGE_API_KEY="sk-image-test",
        VITRINE_IMAGE_MODEL="image-test",
        VITRINE_IMAGE_SIZE="256x256",
    )
    with sqlite3.connect(site.data_dir / "vitrine.sqlite3") as db:
        db.execute("UPDATE catalog_product SET url = 'https://shop.example/p/' || id")
    site.start()
    site.wait()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module", autouse=True)
def screenshots(tmp_path_factory) -> None:
    global SCREENSHOTS
    folder = os.environ.get("VITRINE_SCREENSHOTS_DIR")
    SCREENSHOTS = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def csp_violations(context) -> list[str]:
    """Every Content-Security-Policy violation in the context's pages, as chromium reports
    them: the securitypolicyviolation event, and its console message."""
    violations: list[str] = []
    context.expose_function("vitrineCspViolation", lambda violation: violations.append(violation))
    context.add_init_script(
        """document.addEventListener("securitypolicyviolation", (event) => window.vitrineCspViolation(
            `${event.effectiveDirective} refused ${event.blockedURI} (${event.sourceFile}:${event.lineNumber})`));"""
    )
    context.on(
        "console",
        lambda message: "Content Security Policy" in message.text and violations.append(message.text),
    )
    return violations


@pytest.fixture
def page(browser, site):
    """A page whose test fails on any JavaScript error or Content-Security-Policy violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.url)
    context.set_default_timeout(PATIENCE_MS)
    violations = csp_violations(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
    assert not violations, f"Content-Security-Policy violations: {violations}"


def card_titles(page: Page) -> list[str]:
    return page.locator(".results .card .title").all_inner_texts()


# Predicates for wait_for_function are written as functions, not bare expressions: Playwright
# evaluates a function once, an expression on every poll with eval, which the pages'
# Content-Security-Policy (script-src 'self', no 'unsafe-eval') refuses.


def screenshot(page: Page, name: str) -> None:
    """Save a screenshot once the photos in view have loaded (thumbnails are made on first request)."""
    page.wait_for_function(
        """() => Array.from(document.images)
            .filter((img) => img.getBoundingClientRect().width > 0)
            .filter((img) => img.getBoundingClientRect().top < window.innerHeight)
            .every((img) => img.complete && img.naturalWidth > 0)"""
    )
    page.screenshot(path=str(SCREENSHOTS / name))


def count_of(text: str) -> int:
    """A facet count ("14", read aloud as "14 results")."""
    return int(re.match(r"\d+", text.strip())[0])


def wait_for_results(page: Page, status_pattern: str = r"result|No results") -> None:
    expect(page.locator("#results-status")).to_have_text(re.compile(status_pattern))
    page.wait_for_function("() => !document.body.classList.contains('loading')")


def photo_of(attributes: dict) -> bytes:
    """A new render (a stream the shop never used) of a product's look, as a JPEG."""
    import io

    from catalog.demo import Attributes, demo_attribute_render

    image = demo_attribute_render(
        Attributes(attributes["kind"], attributes["colour"], attributes["pattern"]), stream="browser-test", index=0
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_typing_searches_as_you_type_and_the_url_follows(page, site):
    target = site.products()[3]
    page.goto("/")
    expect(page.locator(".examples a")).to_have_count(6)
    page.locator("#id_q").press_sequentially(target["title"].lower(), delay=20)  # no Enter
    expect(page.locator(".results .card .title").first).to_have_text(target["title"])
    assert parse_qs(urlsplit(page.url).query)["q"] == [target["title"].lower()]
    assert page.title().startswith(target["title"].lower())
    # For the README: a broader query.
    kind = target["attributes"]["kind"]
    page.fill("#id_q", "")
    page.locator("#id_q").press_sequentially(kind, delay=20)
    page.wait_for_function("(kind) => new URLSearchParams(location.search).get('q') === kind", arg=kind)
    expect(page.locator(".query-summary")).to_contain_text(f"Results for “{kind}”")
    wait_for_results(page)
    assert len(card_titles(page)) > 2
    screenshot(page, "search-desktop.png")


def test_a_chinese_query_finds_the_product(page, site):
    target = site.products()[7]
    page.goto("/")
    page.fill("#id_q", target["attributes"]["title_zh"])
    page.keyboard.press("Enter")
    wait_for_results(page)
    assert target["title"] in card_titles(page)[:3]


def test_search_by_photo_with_the_file_picker(page, site):
    target = site.products()[11]
    page.goto("/")
    page.get_by_text("Search with a photo").click()
    page.set_input_files(
        "#id_image", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo_of(target["attributes"])}]
    )
    # The photo is shown, with the words field ready: nothing is sent until the shopper says so.
    expect(page.locator("#photo-preview-image")).to_be_visible()
    expect(page.locator("#id_photo_words")).to_be_focused()
    assert "photo=" not in page.url
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"photo=[0-9a-f]{32}"))
    wait_for_results(page)
    expect(page.locator(".query-summary")).to_contain_text("Searching with your photo")
    first = {p["title"]: p for p in site.products()}[card_titles(page)[0]]
    assert first["attributes"]["kind"] == target["attributes"]["kind"]
    assert first["attributes"]["colour"] == target["attributes"]["colour"]
    # The photo search has a URL: reloading it shows the same results.
    before = card_titles(page)
    page.reload()
    assert card_titles(page) == before


def test_search_by_dropping_a_photo_on_the_page(page, site):
    target = site.products()[15]
    page.goto("/")
    encoded = base64.b64encode(photo_of(target["attributes"])).decode()
    transfer = page.evaluate_handle(
        """(encoded) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("body", "dragenter", {"dataTransfer": transfer})
    expect(page.locator("body")).to_have_class(re.compile("dragging"))
    page.dispatch_event("body", "drop", {"dataTransfer": transfer})
    expect(page.locator("#photo-preview-image")).to_be_visible()
    expect(page.locator("#id_photo_words")).to_be_focused()
    page.keyboard.press("Enter")  # from the words field: sends the photo
    page.wait_for_url(re.compile(r"photo=[0-9a-f]{32}"))
    wait_for_results(page)
    titles = card_titles(page)
    kinds = {p["title"]: p["attributes"]["kind"] for p in site.products()}
    assert kinds[titles[0]] == target["attributes"]["kind"]


def test_search_by_pasting_a_photo(page, site):
    target = site.products()[19]
    page.goto("/")
    encoded = base64.b64encode(photo_of(target["attributes"])).decode()
    page.evaluate(
        """(encoded) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "pasted.jpg", { type: "image/jpeg" }));
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
        }""",
        encoded,
    )
    expect(page.locator("#photo-preview-image")).to_be_visible()
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"photo=[0-9a-f]{32}"))
    wait_for_results(page)
    kinds = {p["title"]: p["attributes"]["kind"] for p in site.products()}
    assert kinds[card_titles(page)[0]] == target["attributes"]["kind"]


def test_imagine_it_says_it_is_drawing_sends_once_and_shows_what_was_drawn(page, site, standin_server):
    looks = ("colour", "pattern", "kind")
    # A look this shop has, with a pattern (the stand-in draws colour, pattern and kind).
    wanted = next(
        {key: p["attributes"][key] for key in looks} for p in site.products() if p["attributes"]["pattern"] != "plain"
    )
    prompt = "a {colour} {pattern} {kind}".format(**wanted)
    standin_server.reset()

    def describe():
        page.goto("/")
        page.get_by_text("Imagine it").click()
        page.get_by_label("Describe it and we'll draw it").fill(prompt)
        return page.get_by_role("button", name="Draw it and search")

    # While it draws (held here: a listener after Vitrine's keeps the form from leaving),
    # the form says so, and a second click is not a second request.
    button = describe()
    page.evaluate(
        """() => document.getElementById("imagine-form").addEventListener("submit", (event) => {
            (window.vitrineSubmits ||= []).push(event.defaultPrevented);
            event.preventDefault();
        })"""
    )
    button.click()
    form = page.locator("#imagine-form")
    expect(form).to_have_attribute("aria-busy", "true")
    expect(form.get_by_role("status")).to_have_text("Drawing your picture… this takes a few seconds.")
    expect(button).to_have_attribute("aria-disabled", "true")
    button.click(force=True)  # aria-disabled does not stop a mouse: Vitrine's script must
    assert page.evaluate("window.vitrineSubmits") == [False, True], "the second click was not stopped"

    # Let go: the picture is drawn once and searched with.
    describe().click()
    page.wait_for_url(re.compile(r"/\?.*photo=[0-9a-f]{32}"))
    expect(page.get_by_text("Drawn for:")).to_be_visible()
    products = site.products_by_id()
    hrefs = [link.get_attribute("href") for link in page.locator("a.card-link").all()[:3]]
    found = [products[int(re.search(r"/products/(\d+)/", href).group(1))] for href in hrefs]
    assert wanted in [{key: p["attributes"][key] for key in looks} for p in found], (prompt, found)
    assert len(standin_server.calls("images")) == 1


def test_a_bad_upload_shows_the_intake_message_in_words(page):
    page.goto("/")
    page.get_by_text("Search with a photo").click()
    page.set_input_files("#id_image", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}])
    page.get_by_role("button", name="Search with this photo").click()
    expect(page.locator("#search-error")).to_contain_text("This file is not a photo.")


def test_a_file_that_is_not_an_image_or_too_large_is_refused_before_uploading(page):
    page.goto("/")
    page.get_by_text("Search with a photo").click()
    page.set_input_files("#id_image", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator("#photo-form .upload-status")).to_contain_text("This file is not a photo.")
    expect(page.locator("#photo-preview")).to_be_hidden()
    limit = int(page.locator("#photo-form").get_attribute("data-max-bytes"))
    big = b"\xff\xd8" + bytes(limit)
    page.set_input_files("#id_image", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big}])
    expect(page.locator("#photo-form .upload-status")).to_contain_text("This photo is too large")
    assert "VITRINE" not in page.locator("#photo-form .upload-status").inner_text()


def test_a_filter_narrows_the_results_to_its_count_and_counts_change(page, site):
    kind = site.products()[0]["attributes"]["kind"]
    page.goto(f"/?q={kind}&loose=1")
    wait_for_results(page)
    brand_counts_before = page.locator("[data-facet=brand] .count").all_inner_texts()
    colour = page.locator("[data-facet=colour]").first
    expected = count_of(colour.locator(".count").inner_text())
    value = colour.get_attribute("data-value")
    colour.click()
    expect(page.locator(".chip").first).to_contain_text(f"Colour: {value}")
    wait_for_results(page)
    expect(page.locator("#results-status")).to_contain_text(f"{expected} result")
    assert page.locator(".results .card").count() == min(expected, 24)
    assert page.locator("[data-facet=brand] .count").all_inner_texts() != brand_counts_before
    brand_total = sum(count_of(n) for n in page.locator("[data-facet=brand] .count").all_inner_texts())
    assert brand_total == expected
    assert f"colour={value}" in page.url
    # The chip removes the filter again.
    page.locator(".chip").first.click()
    wait_for_results(page)
    expect(page.locator(".chip")).to_have_count(0)


def test_sort_by_price(page):
    page.goto("/?q=a+thing&loose=1")
    wait_for_results(page)
    page.get_by_role("link", name="Price: low to high").click()
    expect(page.get_by_role("link", name="Price: low to high")).to_have_attribute("aria-current", "true")
    prices = [float(text.split()[0]) for text in page.locator(".results .card .price").all_inner_texts()]
    assert len(prices) == 24 and prices == sorted(prices)


def test_pagination_and_a_new_filter_goes_back_to_page_one(page):
    page.goto(f"/?q=a+thing&loose={SHOP_SIZE // 24}")  # loosely related, band by band: all of them
    wait_for_results(page)
    first_page = card_titles(page)
    expect(page.locator("#results-status")).to_contain_text(f"{SHOP_SIZE} results · page 1 of 4")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#results-status")).to_contain_text("page 2 of 4")
    second_page = card_titles(page)
    assert len(second_page) == 24 and not set(second_page) & set(first_page)
    assert "page=2" in page.url
    page.go_back()
    expect(page.locator("#results-status")).to_contain_text("page 1 of 4")
    page.go_forward()
    expect(page.locator("#results-status")).to_contain_text("page 2 of 4")
    page.locator("[data-facet=category]").first.click()
    expect(page.locator("#results-status")).not_to_contain_text("page 2")
    assert "page=" not in page.url


def test_more_like_this(page, site):
    page.goto("/?q=a+thing&loose=1")
    wait_for_results(page)
    title = card_titles(page)[0]
    page.locator(".results .card").first.get_by_role("link", name="More like this").click()
    expect(page.locator(".query-summary")).to_contain_text(f"Products similar to {title}")
    wait_for_results(page)
    assert title not in card_titles(page)
    assert page.locator("#id_q").input_value() == ""


def test_like_and_not_this_refine_and_the_original_comes_back(page, site):
    kind = site.products()[0]["attributes"]["kind"]
    page.goto(f"/?q={kind}&loose=1")
    wait_for_results(page)
    original = card_titles(page)
    rejected = original[0]
    page.locator(".results .card").first.get_by_role("link", name=re.compile("Not this")).click()
    expect(page.locator(".refinement")).to_contain_text(f"fewer like {rejected}")
    assert rejected not in card_titles(page)
    liked_card = page.locator(".results .card").nth(4)
    liked = liked_card.locator(".title").inner_text()
    like = liked_card.get_by_role("button", name=re.compile("^Like "))
    expect(like).to_have_attribute("aria-pressed", "false")
    like.focus()
    page.keyboard.press("Space")  # a toggle button: Space presses it
    expect(page.locator(".refinement")).to_contain_text(f"more like {liked}")
    expect(page.locator(".results .card.liked")).to_have_count(1)
    expect(page.locator(".card.liked .like")).to_have_attribute("aria-pressed", "true")
    assert card_titles(page).index(liked) < 4, "a liked product moves up"
    page.get_by_role("link", name="Back to the original results").click()
    expect(page.locator(".refinement")).to_have_count(0)
    assert card_titles(page) == original


def test_the_product_page(page, site):
    page.goto("/?q=a+thing")
    page.fill("#id_q", site.products()[20]["title"])
    page.keyboard.press("Enter")
    wait_for_results(page)
    page.locator(".results .card .card-link").first.click()
    expect(page.locator("#product-title")).to_have_text(site.products()[20]["title"])
    expect(page.get_by_role("link", name="View in the shop ↗")).to_have_attribute(
        "href", re.compile(r"^https://shop\.example/p/\d+$")
    )
    assert page.locator(".product-gallery img").count() >= 2
    expect(page.locator(".similar .card")).to_have_count(8)
    for image in page.locator(".product-gallery img, .similar img").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0") or image.get_attribute("loading") == "lazy"
    assert all(image.get_attribute("alt") for image in page.locator(".product-gallery img").all())
    # A similar product's photo is inside the link that names it: its alt would say the name twice.
    assert {image.get_attribute("alt") for image in page.locator(".similar img").all()} == {""}
    expect(page.locator(".similar .card-link").first).to_have_accessible_name(re.compile(r"\w"))
    screenshot(page, "product-desktop.png")
    page.get_by_role("link", name="← Back to search").click()
    assert "q=" in page.url


def test_the_product_gallery_switches_the_main_photo_in_place_by_mouse_and_keyboard(page, site):
    product = next(p for p in site.products() if p["attributes"]["kind"] == "bag")
    page.goto(f"/products/{product['id']}/")
    main = page.locator("[data-gallery-main]")
    expect(main).to_have_attribute("fetchpriority", "high")
    assert main.get_attribute("loading") is None, "the main photo is the page's largest paint: never lazy"
    thumbs = page.locator(".product-thumbs button")
    count = thumbs.count()
    assert count >= 2, "the thumbnails became buttons"
    expect(thumbs.first).to_have_attribute("aria-pressed", "true")
    first_src = main.get_attribute("src")

    url = page.url
    thumbs.nth(1).click()
    expect(main).to_have_attribute("alt", f"{product['title']}, photo 2 of {count}")
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(thumbs.first).to_have_attribute("aria-pressed", "false")
    assert main.get_attribute("src") != first_src and page.url == url, "switched in place, no navigation"
    page.wait_for_function(
        "() => { const img = document.querySelector('[data-gallery-main]');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    assert page.locator("[data-gallery-link]").get_attribute("href") == thumbs.nth(1).get_attribute("data-photo-large")

    # Keyboard only: Tab reaches the first thumbnail, Space shows it again.
    thumbs.first.focus()
    page.keyboard.press("Space")
    expect(thumbs.first).to_have_attribute("aria-pressed", "true")
    expect(main).to_have_attribute("src", first_src)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-pressed')") == "false"
    page.keyboard.press("Enter")
    expect(main).to_have_attribute("alt", f"{product['title']}, photo 2 of {count}")

    # The strip: the bag's other bags first (same kind), then other kinds.
    titles = page.locator(".similar .card .title").all_inner_texts()
    bags = sum(1 for p in site.products() if p["attributes"]["kind"] == "bag") - 1
    assert all(title.endswith("bag") for title in titles[: min(bags, 3)]), titles
    assert axe_violations(page) == [], "no critical or serious accessibility violation"
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: one column, nothing wider
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    # The search box searches the shop.
    page.get_by_label("Search the shop").fill("red mug")
    page.get_by_label("Search the shop").press("Enter")
    page.wait_for_url(re.compile(r"/\?q=red\+mug"))


def test_runserver_serves_pages_css_and_javascript_gzipped_and_css_and_javascript_cached(site):
    """As ``make run`` serves them (runserver, DEBUG on): WhiteNoise, not runserver's own
    static handler, which sent neither."""
    import gzip
    from urllib.request import Request, urlopen

    for path in ("/", "/static/vitrine/vitrine.css", "/static/vitrine/search.js", "/static/vitrine/product.js"):
        with urlopen(Request(site.url + path, headers={"Accept-Encoding": "gzip"}), timeout=30) as response:
            assert response.headers["Content-Encoding"] == "gzip", path
            assert gzip.decompress(response.read()), path
            if path.startswith("/static/"):
                assert "max-age=3600" in response.headers["Cache-Control"], path


def test_the_product_gallery_works_without_javascript(browser, site):
    context = browser.new_context(java_script_enabled=False, base_url=site.url)
    try:
        page = context.new_page()
        product = next(p for p in site.products() if p["attributes"]["kind"] == "bag")
        page.goto(f"/products/{product['id']}/")
        links = page.locator(".product-thumbs a")
        assert links.count() >= 2
        expect(links.first).to_have_attribute("aria-current", "true")
        href = links.nth(1).get_attribute("href")
        assert re.fullmatch(r"/thumbnails/[0-9a-f]{64}-\d+\.webp", href)
        response = page.goto(href)
        assert response.ok and response.headers["content-type"] == "image/webp"
    finally:
        context.close()


def test_keyboard_only_search_filter_and_clear(page):
    page.goto("/")
    expect(page.locator("#id_q")).to_be_focused()  # autofocus on the empty page
    page.keyboard.type("mug")
    page.keyboard.press("Enter")
    wait_for_results(page)
    # Tab from the search box reaches the photo panel, then the filters, then the results.
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.className || document.activeElement.tagName"))
    assert any("facet-value" in name for name in reached), reached
    while "facet-value" not in page.evaluate("document.activeElement.className"):
        page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control is visibly marked"
    page.keyboard.press("Enter")
    expect(page.locator(".chip")).not_to_have_count(0)
    page.locator("#id_q").focus()
    page.keyboard.press("Escape")
    expect(page.locator("#id_q")).to_have_value("")
    expect(page.locator(".examples a").first).to_be_visible()


def test_a_phone_sized_screen(browser, site):
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, base_url=site.url, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(PATIENCE_MS)
    violations = csp_violations(context)
    page = context.new_page()
    try:
        target = site.products()[3]
        page.goto(f"/?q={target['attributes']['title_zh']}")
        wait_for_results(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, "nothing overflows sideways"
        expect(page.locator(".filters-panel")).not_to_have_attribute("open", "")
        screenshot(page, "search-phone.png")
        page.goto("/?q=a+thing&loose=1")
        wait_for_results(page)
        boxes = [card.bounding_box() for card in page.locator(".results .card").all()[:2]]
        assert boxes[0]["y"] == boxes[1]["y"] and boxes[1]["x"] > boxes[0]["x"], "two cards per row"
        page.locator(".filters-panel summary").click()
        expect(page.locator("[data-facet=category]").first).to_be_visible()
        page.locator(".card-link").first.click()
        expect(page.locator("#product-title")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "product-phone.png")
    finally:
        context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"


def test_the_bulk_upload_page_shows_each_file_reach_indexed_or_its_reason(page, site):
    page.goto("/admin/login/?next=/admin/bulk-upload/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/admin/bulk-upload/$"))
    page.get_by_label(re.compile("Group by file name")).check()
    looks = [p["attributes"] for p in site.products()[:3]]
    files = [
        {"name": f"NEWSKU_{n}.jpg", "mimeType": "image/jpeg", "buffer": photo_of(attributes)}
        for n, attributes in enumerate(looks, start=1)
    ]
    files.append({"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo at all"})
    page.set_input_files("#id_files", files=files)
    rows = page.locator("#bulk-items tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#bulk-items tr[data-state=indexed]")).to_have_count(3)
    failed = page.locator("#bulk-items tr[data-state=failed]")
    expect(failed).to_have_count(1)
    expect(failed.locator("td.reason")).to_contain_text("not an image Vitrine can read")
    expect(failed.get_by_role("button", name="Remove")).to_be_visible()
    expect(page.locator("#bulk-summary")).to_contain_text("3 indexed")
    assert set(page.locator("#bulk-items tr[data-state=indexed] td.product").all_inner_texts()) == {"NEWSKU"}
    screenshot(page, "bulk-upload.png")
    # The state comes from the server: a reload shows the same rows; Remove drops the failed one.
    page.reload()
    expect(page.locator("#bulk-items tr[data-state=indexed]")).to_have_count(3)
    page.locator("#bulk-items tr[data-state=failed]").get_by_role("button", name="Remove").click()
    expect(page.locator("#bulk-items tbody tr")).to_have_count(3)


def test_an_api_key_made_in_the_admin_works_in_the_offline_api_docs(page, site):
    """A merchandiser makes a key (shown once), then tries the API from /api/docs/ with
    every request outside this server refused: the docs' files are all served locally."""
    outside: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/admin/login/?next=/admin/api/apikey/add/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/admin/api/apikey/add/$"))
    page.fill("#id_name", "storefront")
    page.check("#id_scopes_0")  # search
    page.get_by_role("button", name="Save", exact=True).click()
    key = page.get_by_label("The new API key").input_value()
    assert re.fullmatch(r"vtr_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", key)
    page.screenshot(path=str(SCREENSHOTS / "api-key-created.png"))

    page.goto("/api/docs/")
    search = page.locator(".opblock-post", has_text="/api/v1/search")
    expect(search).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("#auth-bearer-value").fill(key)
    dialog.locator("button.authorize").first.click()
    dialog.locator("button.btn-done").first.click()
    search.locator(".opblock-summary").click()
    search.get_by_role("button", name="Try it out").click()
    search.locator("textarea.body-param__text").fill('{"text": "red mug", "limit": 3}')
    search.get_by_role("button", name="Execute").click()
    status = search.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text("200")
    expect(search.locator(".live-responses-table")).to_contain_text('"embedding_space"')
    assert outside == []


def test_every_kind_of_page_works_under_the_content_security_policy(page, site):
    """The search page, results, a product, the admin's login, index, bulk upload and index
    health, Swagger UI and ReDoc: each served with the policy, each working in chromium with
    no violation (the page fixture fails the test on any), nothing fetched from outside
    (ReDoc's fonts are the system's and Redocly's logo is left out: static/vitrine/redoc.js)."""
    outside: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)

    def visit(path: str) -> None:
        response = page.goto(path)
        assert response.ok, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, path

    def settled() -> None:
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # a violation is reported asynchronously

    target = site.products()[9]
    visit("/")
    expect(page.locator(".examples a")).to_have_count(6)
    settled()
    visit(f"/?q={target['title']}")
    wait_for_results(page)
    assert target["title"] in card_titles(page)
    settled()
    visit(f"/products/{target['id']}/")
    expect(page.locator("#product-title")).to_have_text(target["title"])
    settled()

    visit("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile("/admin/$"))
    expect(page.locator("#vitrine-links")).to_be_visible()
    settled()
    visit("/admin/bulk-upload/")
    # Its styles come from static/vitrine/admin.css now, not an inline <style>.
    assert page.locator("#bulk-drop").evaluate("(drop) => getComputedStyle(drop).borderStyle") == "dashed"
    expect(page.locator("#bulk-summary")).to_be_attached()
    settled()
    visit("/admin/index-health/")
    # "Rebuild the index" asks first (static/vitrine/admin.js, no onclick): "Cancel" sends nothing.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Rebuild the index").click()
    assert asked == ["Re-embed every image?"]
    assert page.url.endswith("/admin/index-health/")
    settled()

    visit("/api/docs/")
    expect(page.locator(".opblock-post", has_text="/api/v1/search")).to_be_visible()  # Swagger UI rendered
    settled()
    visit("/api/redoc/")
    expect(page.get_by_role("heading", name=re.compile("^Vitrine API"))).to_be_visible()
    expect(page.locator("[role=menu]").first).to_be_visible()
    settled()
    # ReDoc's styles took (the generated ones carry the nonce; perfect-scrollbar's, a hash).
    rules = page.evaluate("Array.from(document.querySelectorAll('style')).map((style) => style.sheet.cssRules.length)")
    assert len(rules) >= 2 and all(rules), rules
    assert outside == [], outside
    # ReDoc drew its sidebar without Redocly's logo, in the system's fonts.
    expect(page.locator("img[alt='redocly logo']")).to_have_count(0)
    font = page.get_by_role("heading", name=re.compile("^Vitrine API")).evaluate(
        "(h) => getComputedStyle(h).fontFamily"
    )
    assert "Montserrat" not in font and "system-ui" in font, font


def searched_words(requests: list[str]) -> list[str]:
    """The q of every results fetch the page made."""
    return [parse_qs(urlsplit(url).query).get("q", [""])[0] for url in requests]


def test_chinese_typed_with_an_input_method_is_searched_only_when_committed(page):
    """Real composition events from chromium's input method interface (DevTools protocol):
    "红色" committed, then pinyin for the next word composed within the debounce time. The
    half-typed pinyin is never searched; the committed words are."""
    partial_requests: list[str] = []
    page.on("request", lambda r: partial_requests.append(r.url) if r.headers.get("x-vitrine-partial") else None)
    page.goto("/")
    page.locator("#id_q").focus()
    ime = page.context.new_cdp_session(page)

    def compose(text: str) -> None:
        ime.send("Input.imeSetComposition", {"text": text, "selectionStart": len(text), "selectionEnd": len(text)})

    compose("hong")
    compose("hongse")
    ime.send("Input.insertText", {"text": "红色"})  # committed: compositionend
    page.wait_for_timeout(100)
    compose("t")  # the next word starts composing before the 300 ms debounce is over
    page.wait_for_timeout(250)
    compose("tiao")
    page.wait_for_timeout(250)
    compose("tiaowen")
    page.wait_for_timeout(700)  # well past the debounce: a search now would be of "红色tiaowen"
    assert not any(word for word in searched_words(partial_requests) if re.search("[a-z]", word)), partial_requests
    ime.send("Input.insertText", {"text": "条纹"})
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === '红色条纹'")
    wait_for_results(page)
    assert searched_words(partial_requests)[-1] == "红色条纹"
    assert all(not re.search("[a-z]", word) for word in searched_words(partial_requests))


def test_an_inverted_price_range_is_caught_in_the_page_and_the_page_stays_usable(page):
    page.goto("/?q=a+thing&loose=1")
    wait_for_results(page)
    before = page.url
    page.fill("#id_price_min", "50")
    page.fill("#id_price_max", "10")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#price-error")).to_contain_text("The lowest price is above the highest")
    expect(page.locator("#id_price_min")).to_have_attribute("aria-invalid", "true")
    assert page.url == before, "nothing was asked of the server"
    assert page.locator(".results .card").count() == 24
    page.fill("#id_price_max", "100")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".chip").first).to_contain_text("Price: 50 – 100")
    prices = [float(text.split()[0]) for text in page.locator(".results .card .price").all_inner_texts()]
    assert prices and all(50 <= price <= 100 for price in prices)
    # New words keep a working range; a range typed in the URL the wrong way round is read
    # the right way round, and no field name ever shows.
    page.fill("#id_q", "mug")
    page.keyboard.press("Enter")
    wait_for_results(page)
    expect(page.locator(".chip").first).to_contain_text("Price: 50 – 100")
    page.goto("/?q=a+thing&loose=1&price_min=100&price_max=50")
    wait_for_results(page)
    expect(page.locator(".chip").first).to_contain_text("Price: 50 – 100")
    body = page.locator("body").inner_text()
    assert "price_max" not in body and "price_min" not in body and "page:" not in body


def test_the_language_switch_and_a_chinese_page(page, site):
    target = site.products()[5]
    kind = target["attributes"]["kind"]
    page.goto(f"/?q={kind}")
    wait_for_results(page)
    url = page.url
    page.get_by_role("button", name="中文").click()
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert page.url == url, "the switch comes back to the same search"
    expect(page.locator(".summary-title")).to_contain_text("的搜索结果")
    expect(page.locator("#results-status")).to_contain_text("个相关结果")
    expect(page.get_by_role("button", name="中文")).to_have_attribute("aria-pressed", "true")
    chinese_titles = {p["attributes"].get("title_zh") for p in site.products()}
    assert set(card_titles(page)) <= chinese_titles
    expect(page.locator("#facet-colour")).to_have_text("颜色")
    colour_labels = page.locator("[data-facet=colour] .label").all_inner_texts()
    assert colour_labels and all(re.search("[\u4e00-\u9fff]", label) for label in colour_labels)
    # Searching on keeps the language (the partial results come in Chinese too).
    page.fill("#id_q", target["attributes"]["title_zh"])
    page.keyboard.press("Enter")
    wait_for_results(page, "结果")
    assert target["attributes"]["title_zh"] in card_titles(page)[:3]
    screenshot(page, "search-desktop-zh.png")
    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#results-status")).to_contain_text("result")


def test_a_phone_chooses_filters_and_is_shown_the_results(browser, site):
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, base_url=site.url, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    context.set_default_timeout(PATIENCE_MS)
    violations = csp_violations(context)
    page = context.new_page()
    try:
        page.add_init_script(
            """window.__shift = 0;
            new PerformanceObserver((list) => {
                for (const e of list.getEntries()) if (!e.hadRecentInput) window.__shift += e.value;
            }).observe({ type: "layout-shift", buffered: true });"""
        )
        page.goto("/?q=mug&loose=1")
        wait_for_results(page, "结果")
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__shift") < 0.1, "the filters do not fold after the page has shown"
        panel = page.locator(".filters-panel")
        expect(panel).not_to_have_attribute("open", "")
        # Nothing offered that a phone cannot do; a camera is.
        expect(page.locator(".dropzone-hint")).to_be_hidden()
        page.locator("#photo-panel summary").click()
        expect(page.get_by_text("拍照…")).to_be_visible()
        page.locator("#photo-panel summary").click()
        # Touch targets of at least 44 px.
        for selector in (".card-actions .action", ".filters-panel summary", ".language"):
            box = page.locator(selector).first.bounding_box()
            assert box["height"] >= 44, (selector, box)
        panel.locator("summary").click()
        colour = page.locator("[data-facet=colour]").first
        expected = count_of(colour.locator(".count").inner_text())
        assert colour.bounding_box()["height"] >= 44
        colour.click()
        expect(page.locator(".chip").first).to_be_visible()
        expect(panel).to_have_attribute("open", "")  # the shopper may choose more
        show = page.locator(".show-results")
        expect(show).to_be_visible()
        expect(show).to_contain_text(f"显示 {expected} 个结果")
        show.click()
        expect(panel).not_to_have_attribute("open", "")
        expect(page.locator("#results-status")).to_be_focused()
        expect(page.locator("#results-status")).to_contain_text(f"{expected} 个结果")
        assert page.locator("#results-status").bounding_box()["y"] < 740
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "search-phone-zh.png")
        assert not axe_violations(page)
    finally:
        context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"


def test_a_desktop_offers_drop_and_paste_but_not_a_camera(page):
    page.goto("/")
    page.get_by_text("Search with a photo").click()
    expect(page.locator(".dropzone-hint")).to_be_visible()
    expect(page.get_by_text("Take a photo…")).to_be_hidden()


def drag(page: Page, frame: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag with the mouse from one point to another, given as fractions of the photo."""
    box = page.locator(f"{frame} img").bounding_box()
    x0, y0 = box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1]
    x1, y1 = box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def two_products_photo(left: dict, right: dict) -> bytes:
    import io

    from PIL import Image

    from catalog.demo import Attributes, demo_attribute_render

    halves = [
        demo_attribute_render(Attributes(a["kind"], a["colour"], a["pattern"]), stream="crop-test", index=0)
        for a in (left, right)
    ]
    both = Image.new("RGB", (halves[0].width + halves[1].width, max(h.height for h in halves)), "white")
    both.paste(halves[0], (0, 0))
    both.paste(halves[1], (halves[0].width, 0))
    buffer = io.BytesIO()
    both.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_crop_the_photo_before_and_after_searching(page, site):
    products = site.products()
    left = products[0]["attributes"]
    right = next(p["attributes"] for p in products if p["attributes"]["kind"] != left["kind"])
    kinds = {p["title"]: p["attributes"].get("kind") for p in products}
    page.goto("/")
    page.get_by_text("Search with a photo").click()
    page.set_input_files(
        "#id_image", files=[{"name": "two.jpg", "mimeType": "image/jpeg", "buffer": two_products_photo(left, right)}]
    )
    expect(page.locator("#photo-preview-image")).to_be_visible()
    page.wait_for_function("() => document.getElementById('photo-preview-image').naturalWidth > 0")
    drag(page, "#crop-frame", (0.02, 0.02), (0.48, 0.98))
    expect(page.locator("#crop-frame .crop-box")).to_be_visible()
    crop = page.locator("#id_crop").input_value()
    x, y, w, h = map(float, crop.split(","))
    assert x < 0.05 and w == pytest.approx(0.46, abs=0.03) and h > 0.9
    page.get_by_role("button", name="Search with this photo").click()
    page.wait_for_url(re.compile(r"crop="))
    wait_for_results(page)
    expect(page.locator(".summary-title")).to_contain_text("part of it")
    assert kinds[card_titles(page)[0]] == left["kind"]
    # On the results page: another part of the same photo.
    page.get_by_role("button", name="Search part of the photo").click()
    page.wait_for_function("() => document.querySelector('#crop-panel img').naturalWidth > 0")
    drag(page, "#crop-panel", (0.52, 0.02), (0.98, 0.98))
    page.get_by_role("button", name="Search this part").click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('crop').startsWith('0.5')")
    wait_for_results(page)
    assert kinds[card_titles(page)[0]] == right["kind"]
    # And with the keyboard: the box moves with the arrow keys.
    page.get_by_role("button", name="Search part of the photo").click()
    box = page.locator("#crop-panel .crop-box")
    expect(box).to_be_focused()
    before = box.bounding_box()["x"]
    page.keyboard.press("ArrowRight")
    assert box.bounding_box()["x"] > before


def test_skip_to_results_takes_a_keyboard_to_the_first_product_in_a_few_keys(page):
    page.goto("/?q=mug")
    wait_for_results(page)
    page.locator("#id_q").focus()
    presses = 0
    while "skip-to-results" not in (page.evaluate("document.activeElement.className") or ""):
        page.keyboard.press("Tab")
        presses += 1
        assert presses < 4
    page.keyboard.press("Enter")
    expect(page.locator("#results-list")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator(".results .card-link").first).to_be_focused()
    assert page.locator("h1").count() == 1


def test_shoppers_pages_have_no_serious_accessibility_violations(page, site):
    product = site.products()[2]
    for url in ("/", "/?q=mug", "/?q=mug&loose=1&colour=red", f"/products/{product['id']}/", "/no-such-page/"):
        page.goto(url)
        page.wait_for_load_state()
        assert not axe_violations(page), (url, axe_violations(page))
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": site.url}])
    for url in ("/?q=红色杯子", f"/products/{product['id']}/"):
        page.goto(url)
        assert not axe_violations(page), (url, axe_violations(page))


def test_an_unknown_address_shows_the_shop_page_not_django_debug(page):
    response = page.goto("/no/such/thing/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("This page does not exist")
    assert "URLconf" not in page.content()
