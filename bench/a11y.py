"""Accessibility of every email variant, measured with axe-core (the `axe-playwright-python`
package) in Debian's Chromium, in light and dark mode.

    python -m bench.a11y [--json FILE]

Prints one row per (variant, mode): serious+critical violations and their rule ids; writes
JSON. The suite checks the same (tests/test_a11y.py); this script gives the figures.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from digest.email.content import PaperItem, Section
from digest.email.render import Renderer
from digest.store.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


from bench.common import OneLineParser  # noqa: E402
def email_variants(settings) -> dict[str, str]:
    """The HTML of each variant: daily, weekly, with Trending, nothing new."""
    from tests.digest_samples import realistic

    r = Renderer(settings)
    daily = realistic(12)
    daily.view_url = "https://digest.example.org/digest/tok"
    weekly = realistic(12, weekly=True)
    trending = realistic(6)
    trending.sections.append(Section("trending", "Trending on Hugging Face", [
        PaperItem(paper_id=f"2611.2{i:04d}", title=f"A trending paper {i}", url=f"https://arxiv.org/abs/2611.2{i:04d}",
                  authors=["A. Author"], abstract="Short abstract.", hf_upvotes=100 - i,
                  hf_url=f"https://huggingface.co/papers/2611.2{i:04d}") for i in range(3)]))
    return {"daily": r.render(daily).html, "weekly": r.render(weekly).html,
            "trending": r.render(trending).html, "nothing-new": r.render_nothing_new(realistic(0)).html}


def serious(results) -> list[str]:
    return sorted({v["id"] for v in results.response["violations"] if v.get("impact") in ("serious", "critical")})


def check_html(browser, html: str, scheme: str) -> list[str]:
    """Rule ids of the serious/critical axe violations of ``html`` in ``scheme`` (light/dark)."""
    from axe_playwright_python.sync_playwright import Axe

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(html, encoding="utf-8")
        page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
        try:
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
            page.goto(path.as_uri())
            return serious(Axe().run(page))
        finally:
            page.close()


def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path("bench/results/a11y.json"))
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    settings = Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@example.org>",
                        DIGEST_PUBLIC_URL="https://digest.example.org")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, html in email_variants(settings).items():
            for scheme in ("light", "dark"):
                ids = check_html(browser, html, scheme)
                rows.append({"variant": name, "mode": scheme, "serious_or_critical": len(ids), "rules": ids})
        browser.close()
    print(f"{'email variant':<14} {'mode':<6} {'serious+critical':>16}  rules")
    for r in rows:
        print(f"{r['variant']:<14} {r['mode']:<6} {r['serious_or_critical']:>16}  {', '.join(r['rules'])}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
