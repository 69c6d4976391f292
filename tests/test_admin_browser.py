"""The merchandisers' admin in a real browser (Debian's chromium driven by Playwright,
against a live Vitrine): what its scripts do, under the Content-Security-Policy.

The server, the browser and the page (failing a test on any JavaScript error or policy
violation) are tests/test_browser.py's.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live import ADMIN_PASSWORD
from tests.test_browser import PATIENCE_MS, browser, page, photo_of, site  # noqa: F401 - the fixtures, shared

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.xdist_group("browser")]


def admin_open(tab: Page, path: str) -> None:
    """Log in as the template's admin and open ``path``."""
    tab.goto(f"/admin/login/?next={path}")
    tab.fill("#id_username", "admin")
    tab.fill("#id_password", ADMIN_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(re.escape(path) + "$"))


def photo_file(name: str, attributes: dict) -> dict:
    return {"name": name, "mimeType": "image/jpeg", "buffer": photo_of(attributes)}


def test_files_named_sku_n_are_grouped_by_name_after_the_page_says_so(page, site):  # noqa: F811
    admin_open(page, "/admin/bulk-upload/")
    looks = [p["attributes"] for p in site.products()[:3]]
    names = ["MUG-77_1.jpg", "MUG-77_2.jpg", "mug-78-1.jpg"]
    files = [photo_file(name, attributes) for name, attributes in zip(names, looks, strict=True)]

    page.set_input_files("#id_files", files=files)

    note = page.locator("#bulk-detected")
    expect(note).to_be_visible()
    expect(note).to_contain_text("3 files are named like SKU_1.jpg")
    expect(note).to_contain_text("they make 2 products")
    expect(page.get_by_label(re.compile("Group by file name"))).to_be_checked()
    expect(page.locator("#bulk-items tbody tr")).to_have_count(0)  # nothing sent before the merchandiser agrees
    page.get_by_role("button", name="Upload these files").click()
    expect(note).to_be_hidden()
    expect(page.locator("#bulk-items tr[data-state=indexed]")).to_have_count(3)
    products = page.locator("#bulk-items tr[data-state=indexed] td.product").all_inner_texts()
    assert sorted(products) == ["MUG-77", "MUG-77", "mug-78"]


def test_other_file_names_or_a_mode_chosen_by_hand_upload_at_once(page, site):  # noqa: F811
    admin_open(page, "/admin/bulk-upload/")
    look = site.products()[4]["attributes"]

    page.set_input_files("#id_files", files=[photo_file("IMG_1234.jpg", look)])

    expect(page.locator("#bulk-items tr[data-state=indexed]")).to_have_count(1)
    expect(page.locator("#bulk-detected")).to_be_hidden()
    expect(page.locator("#bulk-items td.product")).to_have_text("IMG_1234")  # a camera's number: one product per file

    page.reload()
    page.get_by_label(re.compile("One product per file")).click()  # chosen by hand (already selected): kept
    page.set_input_files("#id_files", files=[photo_file("CUP-9_1.jpg", look)])
    expect(page.locator("#bulk-items tr[data-state=indexed]")).to_have_count(1)
    expect(page.locator("#bulk-items td.product")).to_have_text("CUP-9_1")
    expect(page.locator("#bulk-detected")).to_be_hidden()


def test_an_attribute_row_is_added_with_the_button_and_saved(page, site):  # noqa: F811
    product = site.products()[5]
    admin_open(page, f"/admin/catalog/product/{product['id']}/change/")
    rows = page.locator(".attributes-editor tbody tr")
    count = rows.count()
    values = sum(len(value) if isinstance(value, list) else 1 for value in product["attributes"].values())
    assert count == values + 3  # a row per value, and three blank ones

    page.get_by_role("button", name="Add a row").click()

    expect(rows).to_have_count(count + 1)
    new_name = page.get_by_label(f"Attribute {count + 1}: name", exact=True)
    expect(new_name).to_be_focused()
    new_name.fill("material")
    page.get_by_label(f"Attribute {count + 1}: value", exact=True).fill("linen")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    saved = next(p for p in site.products() if p["id"] == product["id"])
    assert saved["attributes"] == {**product["attributes"], "material": "linen"}


@pytest.fixture
def axe_page(browser, site):  # noqa: F811
    """A page for axe-core: the policy is bypassed in it, because axe's checks add styles to the
    page that a strict policy refuses (the other tests hold the pages to the policy)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.url, bypass_csp=True)
    context.set_default_timeout(PATIENCE_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_the_admin_pages_merchandisers_use_have_no_serious_accessibility_violation(axe_page, site):  # noqa: F811
    """axe-core (tests/accessibility.py) on each page, as a merchandiser reaches it."""
    from tests.accessibility import axe_violations

    tab = axe_page

    product = site.products()[6]
    admin_open(tab, "/admin/")
    found: dict[str, list[str]] = {"/admin/": axe_violations(tab)}

    def check(path: str) -> None:
        response = tab.goto(path)
        assert response.ok, path
        found[path] = axe_violations(tab)

    check("/admin/catalog/product/")
    # Tag suggestions to review: the products' "Suggest tags" action, on the first page's first rows.
    for box in tab.locator("#result_list input.action-select").all()[:3]:
        box.check()
    tab.select_option("select[name=action]", "suggest_tags")
    tab.get_by_role("button", name="Go").click()
    expect(tab.locator(".messagelist")).to_contain_text("tags suggested")
    for path in (
        f"/admin/catalog/product/{product['id']}/change/",
        "/admin/catalog/feedimport/add/",
        "/admin/bulk-upload/",
        "/admin/api/apikey/add/",
        "/admin/embeddings/tagsuggestion/",
        "/admin/index-health/",
    ):
        check(path)
    expect(tab.locator("#count-indexed")).to_be_visible()
    violations = {path: lines for path, lines in found.items() if lines}
    assert violations == {}, "\n".join(f"{path}: {line}" for path, lines in violations.items() for line in lines)
