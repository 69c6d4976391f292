"""Lighthouse on the shoppers' pages, phone and desktop, in Debian's chromium.

    .venv/bin/python benchmarks/lighthouse.py [--url http://127.0.0.1:8000] [--products 600]
        [--reports DIR] [--details]

Installs Lighthouse 12 with npm into ``benchmarks/.npm/`` (once; not committed). Without
``--url`` it starts Vitrine as ``make run`` does (migrate, the 600-product demo shop,
runserver, DEBUG on) in a temporary data folder, and stops it at the end. Each page is
asked for once before Lighthouse loads it, as a shopper before would have: the server has
loaded the model and made the thumbnails (made on first request, then served from disk).

Pages: the search page with words, the empty search page, and the first product the words
find. Form factors: mobile (Lighthouse's default: a mid-range phone, slow 4G, 4x CPU
slowdown) and desktop (``--preset=desktop``). Prints the four category scores and LCP,
CLS and TBT for each; ``--details`` adds the audits that lost points in performance and
accessibility. Lighthouse's JSON reports are written to ``--reports`` (a temporary folder
by default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
NPM_PREFIX = ROOT / "benchmarks" / ".npm"
LIGHTHOUSE = NPM_PREFIX / "node_modules" / ".bin" / "lighthouse"
LIGHTHOUSE_PACKAGE = "lighthouse@12"
CHROME_PATH = "/usr/bin/chromium"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"
QUERY = "red striped mug"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = ("largest-contentful-paint", "cumulative-layout-shift", "total-blocking-time")  # LCP, CLS, TBT
FORM_FACTORS = {"mobile": [], "desktop": ["--preset=desktop"]}


def lighthouse_install() -> None:
    if LIGHTHOUSE.exists():
        return
    if not shutil.which("npm"):
        sys.exit("npm is needed to install Lighthouse (Debian: apt-get install npm).")
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    print(f"Installing {LIGHTHOUSE_PACKAGE} into {NPM_PREFIX} …", flush=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NPM_PREFIX), LIGHTHOUSE_PACKAGE], check=True
    )


class Vitrine:
    """Vitrine as ``make run`` starts it, in a data folder of its own."""

    def __init__(self, products: int, port: int):
        self.folder = Path(tempfile.mkdtemp(prefix="vitrine-lighthouse-"))
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.products = products
        self.process: subprocess.Popen | None = None
        self.env = {**os.environ, "VITRINE_DATA_DIR": str(self.folder)}
        self.env.pop("DATABASE_URL", None)

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True)

    def start(self) -> None:
        print(f"Building the {self.products}-product demo shop in {self.folder} …", flush=True)
        self.manage("migrate", "--noinput")
        self.manage("load_demo_catalog", "--products", str(self.products))
        log = (self.folder / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urlopen(self.url + "/", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        sys.exit(f"Vitrine did not answer on {self.url} within 120 s (log: {self.folder / 'server.log'}).")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def fetch(url: str) -> str:
    with urlopen(url, timeout=60) as response:
        return response.read().decode()


def warm(base: str, path: str) -> None:
    """Ask for the page and every thumbnail it shows: what Lighthouse measures is then the
    page as shoppers get it once the server is running, not the first request's work."""
    html = fetch(base + path)
    for image in sorted(set(re.findall(r"(/thumbnails/[0-9a-f]{64}-\d+\.webp)", html))):
        with urlopen(base + image, timeout=60) as response:
            response.read()


def lighthouse_run(url: str, form_factor: str, report: Path) -> dict | None:
    """Lighthouse's report of the page, or None when it could not load it (said on stderr)."""
    command = [
        str(LIGHTHOUSE),
        url,
        "--output=json",
        f"--output-path={report}",
        "--quiet",
        f"--chrome-flags={CHROME_FLAGS}",
        *FORM_FACTORS[form_factor],
    ]
    done = subprocess.run(command, env={**os.environ, "CHROME_PATH": CHROME_PATH})
    if done.returncode != 0 or not report.exists():
        print(f"Lighthouse failed on {url} ({form_factor}): exit status {done.returncode}", file=sys.stderr)
        return None
    result = json.loads(report.read_text())
    if result.get("runtimeError"):
        print(f"Lighthouse could not measure {url}: {result['runtimeError']}", file=sys.stderr)
        return None
    return result


def lost_points(result: dict, category: str) -> list[str]:
    """The category's audits that did not pass: scored ones, and (performance) the
    opportunities and diagnostics that do not count in the score but say what to fix."""
    audits = result["audits"]
    lines = []
    for ref in result["categories"][category]["auditRefs"]:
        audit = audits[ref["id"]]
        scored = audit.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings")
        if scored and audit.get("score") is not None and audit["score"] < 1:
            shown = audit.get("displayValue", "")
            lines.append(f"    {category}: {audit['id']} ({audit['score']:.2f}) {audit['title']} {shown}".rstrip())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running Vitrine (default: start one as make run does).")
    parser.add_argument("--products", type=int, default=600, help="Demo shop size when starting one (default 600).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reports", type=Path, help="Folder for Lighthouse's JSON reports.")
    parser.add_argument("--details", action="store_true", help="List the audits that lost points.")
    args = parser.parse_args()

    if not Path(CHROME_PATH).exists():
        sys.exit(f"Lighthouse runs Debian's chromium: {CHROME_PATH} is missing (apt-get install chromium).")
    lighthouse_install()
    vitrine = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        vitrine = Vitrine(args.products, args.port)
        vitrine.start()
        base = vitrine.url
    reports = args.reports or Path(tempfile.mkdtemp(prefix="lighthouse-reports-"))
    reports.mkdir(parents=True, exist_ok=True)
    try:
        search = "/?q=" + QUERY.replace(" ", "+")
        product = re.search(r'href="(/products/\d+/)"', fetch(base + search))[1]
        pages = {"search": search, "empty": "/", "product": product}
        for path in pages.values():
            warm(base, path)
        rows, details = [], []
        for name, path in pages.items():
            for form_factor in FORM_FACTORS:
                result = lighthouse_run(base + path, form_factor, reports / f"{name}-{form_factor}.json")
                if result is None:
                    continue
                scores = [round(100 * (result["categories"][c]["score"] or 0)) for c in CATEGORIES]
                metrics = [result["audits"][audit]["numericValue"] for audit in METRICS]
                rows.append((name, path, form_factor, scores, metrics))
                print(f"  {name} {form_factor}: {scores}", flush=True)
                if args.details:
                    details += [f"  {name} {form_factor}:"]
                    for category in ("performance", "accessibility", "best-practices"):
                        details += lost_points(result, category)
    finally:
        if vitrine is not None:
            vitrine.stop()

    version = json.loads((NPM_PREFIX / "node_modules" / "lighthouse" / "package.json").read_text())["version"]
    print(f"\nLighthouse {version}, {CHROME_PATH}; reports in {reports}\n")
    print("| page | form factor | performance | accessibility | best practices | SEO | LCP | CLS | TBT |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path, form_factor, scores, (lcp, cls, tbt) in rows:
        print(
            f"| {name} (`{path}`) | {form_factor} | {' | '.join(str(s) for s in scores)} "
            f"| {lcp / 1000:.2f} s | {cls:.3f} | {tbt:.0f} ms |"
        )
    if details:
        print("\nAudits that lost points:")
        print("\n".join(details))


if __name__ == "__main__":
    main()
