"""A real browser for the UI tests: headless Chromium (Debian's binary, /usr/bin/chromium or
$CHROMIUM; never a downloaded build) driven by Python Playwright.

- `Browser()` (a context manager) launches it; `browser.page()` opens a tab in a fresh context
  (its own cookie jar) that records console errors: a Content-Security-Policy violation shows up
  there, and `assert_clean(page, origin)` fails the test on any while a page of `origin` showed.
- `check_accessibility(page)` runs axe-core (from npm, `tests/oauth-peer/node_modules`) on the
  page's current document and fails on any serious or critical violation. The page's own CSP
  forbids injected script, so axe runs in a separate context that bypasses CSP, on the same URL
  with the same cookies; the tested page itself never bypasses it.
- `screenshot(page, name)` writes `docs/screenshots/{name}-desktop.png` (1280 px wide) and
  `{name}-phone.png` (375 px), full page.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "oauth-peer" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError(f"Chromium is not installed at {path} (apt-get install chromium)")
    return path


class Browser:
    def __init__(self) -> None:
        self._playwright = None
        self._browser = None

    def __enter__(self) -> "Browser":
        self._playwright = sync_playwright().start()
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        self._browser = self._playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=args
        )
        return self

    def __exit__(self, *exc) -> None:
        if self._browser:
            self._browser.close()
        if self._playwright:
            self._playwright.stop()

    def page(self, viewport: dict | None = None) -> Page:
        """A tab in a fresh context (own cookies) that records its console errors in
        `page.console_errors`."""
        context = self._browser.new_context(viewport=viewport or DESKTOP)
        page = context.new_page()
        page.set_default_timeout(20_000)
        # (the page's URL then, the error): pages of other sites (the IdP) are not ours to judge.
        errors: list[tuple[str, str]] = []
        page.on(
            "console",
            lambda message: errors.append(
                (page.url, f"{message.text} ({message.location.get('url')})")
            )
            if message.type == "error"
            else None,
        )
        page.on("pageerror", lambda error: errors.append((page.url, f"uncaught: {error}")))
        page.console_errors = errors  # type: ignore[attr-defined]
        return page

    def check_accessibility(self, page: Page) -> list[dict]:
        """Runs axe-core on what `page` shows (its URL, its cookies) in a CSP-bypassing twin
        context; asserts no serious or critical violation; returns every violation."""
        if not AXE.exists():
            raise RuntimeError(f"axe-core is not installed: run `npm ci` in {AXE.parents[2]}")
        twin_context = self._browser.new_context(
            bypass_csp=True, viewport=page.viewport_size or DESKTOP
        )
        try:
            twin_context.add_cookies(page.context.cookies())
            twin = twin_context.new_page()
            twin.goto(page.url)
            twin.add_script_tag(content=AXE.read_text())
            result = twin.evaluate(
                "async () => await axe.run(document, {resultTypes: ['violations']})"
            )
        finally:
            twin_context.close()
        violations = result["violations"]
        serious = [
            {"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"] for n in v["nodes"]][:3]}
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
        assert not serious, f"accessibility violations on {page.url}: {serious}"
        return violations

    def screenshot(self, page: Page, name: str) -> None:
        """`docs/screenshots/{name}-desktop.png` and `{name}-phone.png` of `page`'s URL."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for suffix, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            context = self._browser.new_context(viewport=viewport)
            try:
                context.add_cookies(page.context.cookies())
                shot = context.new_page()
                shot.goto(page.url)
                width = shot.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], (
                    f"{page.url} scrolls sideways at {viewport['width']} px ({width} px wide)"
                )
                shot.screenshot(path=str(SCREENSHOTS / f"{name}-{suffix}.png"), full_page=True)
            finally:
                context.close()


def assert_clean(page: Page, origin: str) -> None:
    """No console error (a CSP violation is one) so far on `page` while it showed a page of
    `origin` (the server under test)."""
    errors = [e for at, e in page.console_errors if at.startswith(origin)]  # type: ignore[attr-defined]
    assert not errors, f"console errors on {origin}: {errors}"
