"""axe-core, run in a Playwright page: the accessibility check of the browser tests.

axe-core comes from npm (``make test`` installs ``node_modules`` from package-lock.json);
it is evaluated in the page through the DevTools protocol, so the pages'
Content-Security-Policy (no inline or eval'd scripts) stays as strict as it is for shoppers.
"""

from __future__ import annotations

import functools
from pathlib import Path

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA rules, and axe's best practices (landmarks, one h1…).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@functools.cache
def _axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: `make test` installs it (npm ci).")
    return AXE.read_text()


def axe_violations(page, impacts=("critical", "serious"), *, exclude=()) -> list[str]:
    """axe's violations of the given impacts on the page as it is now, one line each
    (rule, impact, help, the first offending elements)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    results = page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length ? { exclude: exclude.map((selector) => [selector]) } : document;
            const options = { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] };
            return await window.axe.run(context, options);
        }""",
        [AXE_TAGS, list(exclude)],
    )
    lines = []
    for violation in results["violations"]:
        if violation["impact"] not in impacts:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — {targets}")
    return lines
