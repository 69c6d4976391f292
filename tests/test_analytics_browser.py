"""Search analytics in a real browser (Debian's chromium driven by Playwright, against a live
Vitrine): a shopper's click on a result is beaconed and shows on the admin's dashboard
with its position.

The server, the browser and the page (failing a test on any JavaScript error or policy
violation) are tests/test_browser.py's.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.test_admin_browser import admin_open
from tests.test_browser import PATIENCE_MS, browser, page, site  # noqa: F401 - the fixtures, shared

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_a_click_on_the_third_result_shows_on_the_dashboard_at_position_3(page, site):  # noqa: F811
    page.goto("/?q=bag")
    cards = page.locator(".results .card .card-link")
    expect(cards.nth(3)).to_be_visible()
    third = cards.nth(2)
    expect(third).to_have_attribute("data-position", "3")
    product = third.get_attribute("data-product")

    third.click()
    page.wait_for_url(re.compile(rf"/products/{product}/$"))

    admin_open(page, "/admin/search-analytics/")
    # The beacon is on its way while the browser leaves the page: look again until it is in.
    deadline = time.monotonic() + PATIENCE_MS / 1000
    while (
        page.locator("#table-positions tbody tr")
        .filter(has=page.locator("th", has_text=re.compile("^3$")))
        .locator("td")
        .inner_text()
        != "1"
    ):
        assert time.monotonic() < deadline, "the click never reached the dashboard"
        time.sleep(0.5)
        page.reload()
    top = page.locator("#table-top tbody tr").filter(has=page.locator("th", has_text=re.compile("^bag$")))
    expect(top.locator("td")).to_have_text(["1", "1", "100.0%"])
    folder = os.environ.get("VITRINE_SCREENSHOTS_DIR")
    if folder:  # make screenshots: the README's picture of the dashboard
        page.screenshot(path=str(Path(folder) / "analytics-dashboard.png"), full_page=True)
