"""Merchandising as a merchandiser does it, in a real browser (Debian's chromium driven by
Playwright, against a live Vitrine): a rule made in the admin's forms pins a product to
the first place for "mug" and buries a brand; the preview shows both with the scores
explained, and the shoppers' page obeys them. The rule is deleted at the end (the live
server is shared with the other browser tests).

The server, the browser and the page (failing a test on any JavaScript error or policy
violation) are tests/test_browser.py's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.test_admin_browser import admin_open
from tests.test_browser import browser, page, site  # noqa: F401 - the fixtures, shared

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def shown(page, path: str) -> list[tuple[str, str]]:  # noqa: F811
    """(product id, brand) of the results a shopper sees at ``path``, in order."""
    page.goto(path)
    cards = page.locator(".results .card")
    expect(cards.first).to_be_visible()
    return [
        (card.locator(".card-link").get_attribute("data-product"), card.locator(".brand-name").inner_text())
        for card in cards.all()
    ]


def test_a_merchandiser_pins_a_product_for_mug_and_buries_a_brand(page, site):  # noqa: F811
    before = shown(page, "/?q=mug")
    assert len(before) >= 4
    pinned = shown(page, "/?q=vase")[0][0]  # not a mug: the pin brings it in from elsewhere
    assert pinned not in {product for product, _ in before}
    buried = before[0][1]  # the brand of the first mug
    assert buried

    admin_open(page, "/admin/embeddings/merchandisingrule/add/")
    page.get_by_label("Name").fill("Vase first for mug, bury " + buried)
    page.get_by_label("Match").select_option("exact")
    page.get_by_label("Phrase").fill("Mug")
    page.fill("#id_pins-0-product", pinned)
    page.fill("#id_pins-0-position", "1")
    page.select_option("#id_boosts-0-field", "brand")
    page.fill("#id_boosts-0-value", buried)
    page.fill("#id_boosts-0-factor", "0.2")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    rule_link = page.locator("#result_list tbody tr th a").first
    rule_id = re.search(r"/(\d+)/change/", rule_link.get_attribute("href")).group(1)
    try:
        # The preview: the pinned product first, the rule named, each score shown.
        page.goto("/admin/embeddings/merchandisingrule/preview/?q=mug")
        column = page.locator("#search-preview .preview-column").first
        expect(column.locator(".rules-fired")).to_contain_text("Vase first for mug")
        first_row = column.locator("tbody tr").first
        expect(first_row).to_contain_text(f"id {pinned},")
        expect(first_row.locator(".rule-effect")).to_contain_text("pinned")
        folder = os.environ.get("VITRINE_SCREENSHOTS_DIR")
        if folder:  # make screenshots: the README's picture of the preview
            page.screenshot(path=str(Path(folder) / "rules-preview.png"), full_page=True)

        # The shoppers' page obeys the rule.
        after = shown(page, "/?q=mug")
        assert after[0][0] == pinned
        # It led before; now the pin and every other relevant mug come first.
        assert [brand for _, brand in after[1:]][-1] == buried, (before, after)
        assert sorted(after[1:]) == sorted(before), (before, after)  # the same mugs, reordered
    finally:
        page.goto(f"/admin/embeddings/merchandisingrule/{rule_id}/delete/")
        page.get_by_role("button", name=re.compile("Yes, I.m sure")).click()
        expect(page.locator(".messagelist .success")).to_be_visible()
    assert shown(page, "/?q=mug")[0][0] != pinned  # deleted: the shop's order again
