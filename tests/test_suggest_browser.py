"""The search box's suggestions in a real browser: a WAI-ARIA combobox that the keyboard,
the mouse and a screen reader can use, in English and Chinese, beside search as you type.

The live server, browser and page (which fails a test on any JavaScript error or
Content-Security-Policy violation) are test_browser.py's fixtures, on the shared demo
shop's template.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests import test_browser as browser_tests
from tests.accessibility import axe_violations
from tests.test_browser import wait_for_results

# test_browser.py's fixtures, used here as they are there.
site = browser_tests.site
browser = browser_tests.browser
page = browser_tests.page

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def clicked_search(site, query: str, *, clicks: int, language: str = "en") -> None:
    """A past search with clicks on its results, as analytics records them."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(site.data_dir / "vitrine.sqlite3") as db:
        cursor = db.execute(
            "INSERT INTO analytics_searchrecord (search_id, created_at, query, language, kind, source,"
            " result_count, zero_results, latency_ms, engine_version)"
            " VALUES (?, ?, ?, ?, 'text', 'page', 12, 0, 40.0, '')",
            (uuid.uuid4().hex[:24], now, query, language),
        )
        for position in range(1, clicks + 1):
            db.execute(
                "INSERT INTO analytics_searchevent (search_id, type, position, created_at) VALUES (?, 'click', ?, ?)",
                (cursor.lastrowid, position, now),
            )


def test_arrow_down_and_enter_search_for_a_popular_suggestion_and_escape_closes(page, site):
    clicked_search(site, "striped umbrella", clicks=3)
    page.goto("/")
    box = page.locator("#id_q")
    listbox = page.get_by_role("listbox", name="Suggestions")
    expect(box).to_have_attribute("role", "combobox")
    expect(box).to_have_attribute("aria-expanded", "false")

    box.press_sequentially("stri", delay=30)

    expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    expect(options.first).to_have_text("striped umbrella Popular search")
    expect(options).to_contain_text(["striped"])
    expect(box).to_have_attribute("aria-expanded", "true")
    assert "search-suggestions" in box.get_attribute("aria-controls").split()
    expect(box).to_have_attribute("aria-autocomplete", "list")
    expect(page.locator("#suggestions-status")).to_have_text(
        f"{options.count()} suggestions. Use the up and down arrow keys to choose one."
    )
    # Once search as you type has shown its results (the page is dimmed while it loads).
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'stri'")
    page.wait_for_function("() => !document.body.classList.contains('loading')")
    expect(listbox).to_be_visible()
    assert not axe_violations(page), axe_violations(page)

    box.press("ArrowDown")
    first_id = options.first.get_attribute("id")
    expect(box).to_have_attribute("aria-activedescendant", first_id)
    expect(options.first).to_have_attribute("aria-selected", "true")
    expect(box).to_have_value("stri")  # the box keeps what was typed until one is chosen
    box.press("ArrowUp")  # back to the box
    expect(box).not_to_have_attribute("aria-activedescendant", first_id)
    box.press("ArrowDown")
    box.press("Enter")

    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'striped umbrella'")
    wait_for_results(page)
    expect(box).to_have_value("striped umbrella")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(page.locator(".query-summary")).to_contain_text("striped umbrella")

    # Escape closes the list and keeps the words; a second Escape clears the box as before.
    box.fill("")
    box.press_sequentially("umb", delay=30)
    expect(listbox).to_be_visible()
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("umb")
    expect(box).to_be_focused()
    box.press("Escape")
    expect(box).to_have_value("")


def test_a_chinese_shopper_clicks_a_chinese_suggestion(page, site):
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": site.url}])
    page.goto("/")
    box = page.locator("#id_q")

    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/suggest" in request.url else None)
    box.focus()
    ime = page.context.new_cdp_session(page)
    for pinyin in ("b", "be", "bei"):  # composed with an input method: nothing is asked
        end = len(pinyin)
        ime.send("Input.imeSetComposition", {"text": pinyin, "selectionStart": end, "selectionEnd": end})
        page.wait_for_timeout(200)
    listbox = page.get_by_role("listbox")
    expect(listbox).to_be_hidden()
    assert asked == []
    ime.send("Input.insertText", {"text": "杯"})  # committed: one Chinese character is a word

    expect(listbox).to_be_visible()
    assert [parse_qs(urlsplit(url).query)["q"] for url in asked] == [["杯"]]
    option = listbox.get_by_role("option", name="杯子")
    option.click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === '杯子'")
    wait_for_results(page, "结果")
    expect(box).to_have_value("杯子")
    expect(listbox).to_be_hidden()
    expect(box).to_be_focused()
