"""The search analytics dashboard, its CSV exports and ``manage.py search_report``, from rows
of known values: the figures shown are the ones a person would count by hand."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from analytics.models import SearchEvent, SearchRecord
from catalog.models import Product

# (query, zero results, latency ms, click positions)
SEARCHES = [
    ("mug", False, 10.0, [1]),
    ("mug", False, 30.0, [1, 3]),
    ("mug", False, 20.0, []),
    ("mug", False, 50.0, []),
    ("lamp", False, 40.0, []),
    ("lamp", False, 60.0, []),
    ("lamp", False, 70.0, []),
    ("潜水艇", True, 15.0, []),
    ("潜水艇", True, 25.0, []),
    ("teapot", True, 35.0, []),
    ("", False, 500.0, [12]),  # a photo search: no words
]


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


@pytest.fixture
def searches(db):
    product = Product.objects.create(external_id="p1", title="Mug")
    now = timezone.now()
    for number, (query, zero, latency, positions) in enumerate(SEARCHES):
        search = SearchRecord.objects.create(
            query=query,
            kind="photo" if not query else "text",
            source="page",
            result_count=0 if zero else 5,
            zero_results=zero,
            latency_ms=latency,
            created_at=now - timedelta(minutes=number),
        )
        for position in positions:
            SearchEvent.objects.create(search=search, type="click", product=product, position=position)
    # Outside the last 7 days (inside the last 30), with a click.
    old = SearchRecord.objects.create(
        query="old vase",
        kind="text",
        source="api",
        result_count=1,
        zero_results=False,
        latency_ms=9999.0,
        created_at=now - timedelta(days=10),
    )
    SearchEvent.objects.create(search=old, type="click", product=product, position=2)
    return SEARCHES


@pytest.fixture
def staff(db):
    user = User.objects.create_user("merchandiser", password="pw-1234567890", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_synonym"))
    client = Client()
    client.force_login(user)
    return client


class Tables(HTMLParser):
    """Every <table id=…>'s rows as lists of cell texts, and the links in its cells."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: dict[str, list[str]] = {}
        self._table = None
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
            self.links[self._table] = []
        elif self._table and tag == "tr":
            self.tables[self._table].append([])
        elif self._table and tag in ("td", "th"):
            self._cell = ""
        elif self._table and tag == "a":
            self.links[self._table].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif self._table and tag in ("td", "th"):
            self.tables[self._table][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_the_dashboard_shows_the_figures_of_the_last_7_days(searches, staff):
    response = staff.get("/admin/search-analytics/", {"days": "7"})

    assert response.status_code == 200
    page = Tables(response.content.decode())
    latencies = [latency for _, _, latency, _ in SEARCHES]
    summary = dict(page.tables["analytics-summary"])
    assert summary == {
        "Searches": "11",
        "With no results": "3",
        "Clicks": "4",
        "Searches with a click": f"{3 / 11 * 100:.1f}%",
        "Latency p50": f"{nearest_rank(latencies, 0.5):.1f} ms",
        "Latency p95": f"{nearest_rank(latencies, 0.95):.1f} ms",
    }
    assert summary["Latency p50"] == "35.0 ms" and summary["Latency p95"] == "500.0 ms"
    top = page.tables["table-top"]
    assert top[0] == ["Query", "Searches", "Clicks", "Click-through"]
    assert top[1:] == [
        ["mug", "4", "3", "50.0%"],
        ["lamp", "3", "0", "0.0%"],
        ["潜水艇", "2", "0", "0.0%"],
        ["teapot", "1", "0", "0.0%"],
    ]
    assert page.tables["table-zero"][1:] == [["潜水艇", "2", "Add synonym"], ["teapot", "1", "Add synonym"]]
    assert page.tables["table-low_ctr"][1:] == [["lamp", "3", "0", "0.0%"]]
    positions = dict(page.tables["table-positions"][1:])
    assert (positions["1"], positions["2"], positions["3"], positions["11+"]) == ("2", "0", "1", "1")
    days = page.tables["table-days"][1:]
    assert len(days) == 7 and days[-1][0] == timezone.localdate().isoformat()
    assert sum(int(row[1]) for row in days) == 11


def test_a_zero_result_query_links_to_a_synonym_prefilled_with_it(searches, staff):
    page = Tables(staff.get("/admin/search-analytics/").content.decode())

    link = page.links["table-zero"][0]
    path, query = urlsplit(link).path, parse_qs(urlsplit(link).query)
    assert path == "/admin/embeddings/synonym/add/"
    assert query == {"terms": ["潜水艇, "]}
    form = staff.get(link).content.decode()
    assert 'value="潜水艇, "' in form  # the admin's add form takes it


def test_a_zero_result_query_links_to_a_rule_prefilled_with_it(searches, staff):
    user = User.objects.get(username="merchandiser")
    user.user_permissions.add(Permission.objects.get(codename="add_merchandisingrule"))
    page = Tables(staff.get("/admin/search-analytics/").content.decode())

    rule_links = [link for link in page.links["table-zero"] if "/merchandisingrule/" in link]
    path, query = urlsplit(rule_links[0]).path, parse_qs(urlsplit(rule_links[0]).query)
    assert path == "/admin/embeddings/merchandisingrule/add/"
    assert query == {"name": ["潜水艇"], "match": ["exact"], "phrase": ["潜水艇"]}
    form = staff.get(rule_links[0]).content.decode()
    assert 'name="phrase"' in form and 'value="潜水艇"' in form  # the rules' add form takes it


def test_a_staff_member_who_may_not_add_synonyms_gets_no_link(searches):
    client = Client()
    client.force_login(User.objects.create_user("viewer", password="pw-1234567890", is_staff=True))

    page = Tables(client.get("/admin/search-analytics/").content.decode())

    assert page.tables["table-zero"][1:] == [["潜水艇", "2", ""], ["teapot", "1", ""]]
    assert page.links["table-zero"] == []


def test_a_longer_range_takes_the_older_rows_too(searches, staff):
    today = timezone.localdate()

    page = Tables(
        staff.get(
            "/admin/search-analytics/", {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
        ).content.decode()
    )

    assert dict(page.tables["analytics-summary"])["Searches"] == "12"
    assert ["old vase", "1", "1", "100.0%"] in page.tables["table-top"]


def test_each_table_downloads_as_csv(searches, staff):
    response = staff.get("/admin/search-analytics/", {"days": "7", "export": "top"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="search-top-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["Query", "Searches", "Clicks", "Click-through"],
        ["mug", "4", "3", "50.0%"],
        ["lamp", "3", "0", "0.0%"],
        ["潜水艇", "2", "0", "0.0%"],
        ["teapot", "1", "0", "0.0%"],
    ]
    zero = list(csv.reader(io.StringIO(staff.get("/admin/search-analytics/", {"export": "zero"}).content.decode())))
    assert zero == [["Query", "Searches"], ["潜水艇", "2"], ["teapot", "1"]]


def test_the_charts_are_inline_svg_with_a_text_alternative(searches, staff):
    html = staff.get("/admin/search-analytics/").content.decode()

    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="analytics-chart"') == 2
    assert '<title id="chart-positions-title">Clicks by result position</title>' in html
    assert 'aria-labelledby="chart-days-title chart-days-desc"' in html
    assert "<script" not in html.split('id="content-main"')[1]  # drawn on the server, no library
    assert "<title>1: 2</title>" in html  # the first position's bar: 2 clicks


def test_the_dashboard_is_for_staff_and_listed_on_the_admin_index(searches, staff):
    assert Client().get("/admin/search-analytics/").status_code == 302  # to the login page
    assert 'href="/admin/search-analytics/"' in staff.get("/admin/").content.decode()


def test_a_range_that_cannot_be_read_shows_the_last_7_days_and_says_so(searches, staff):
    response = staff.get("/admin/search-analytics/", {"from": "yesterday", "to": "2026-13-01"})

    assert response.status_code == 200
    assert "could not be read" in response.content.decode()
    assert dict(Tables(response.content.decode()).tables["analytics-summary"])["Searches"] == "11"


def test_search_report_prints_the_same_tables_aligned(searches):
    out = io.StringIO()

    call_command("search_report", "--days", "7", stdout=out)

    text = out.getvalue()
    lines = text.splitlines()
    assert ["Searches", "11"] in [line.split() for line in lines]
    top = lines[lines.index("Top queries") + 2 :][:6]
    assert top[0].split() == ["Query", "Searches", "Clicks", "Click-through"]
    assert [line.split() for line in top[2:]] == [
        ["mug", "4", "3", "50.0%"],
        ["lamp", "3", "0", "0.0%"],
        ["潜水艇", "2", "0", "0.0%"],
        ["teapot", "1", "0", "0.0%"],
    ]
    # Aligned: the figures end in the same column (a Chinese character is two columns wide).
    from analytics.management.commands.search_report import width

    ends = {width(line) for line in top[2:]}
    assert len(ends) == 1, top
    assert "Latency p95" in text and "500.0 ms" in text
    assert "old vase" not in text
