"""Open a generated HTML report in headless Chromium (Debian's `chromium`, driven by Playwright):
a screenshot, the console errors, and what rendered."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("headless Chromium is missing: apt-get install chromium (`make browser` does it)")
    return found


def open_report(page_file: Path, screenshot: Path, *, width: int = 1400, height: int = 900) -> dict[str, Any]:
    """Load `page_file`, wait for plotly, hover the first map point if any, take a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.goto(page_file.resolve().as_uri(), wait_until="load")
        # plotly.js and the figures are unpacked in the browser: wait until every figure is drawn
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".every(d => d.classList.contains('js-plotly-plot'))",
            timeout=60_000,
        )
        page.wait_for_timeout(500)
        info = page.evaluate(
            """() => ({
                plotly: typeof window.Plotly,
                plots: document.querySelectorAll('.js-plotly-plot').length,
                points_per_plot: Array.from(document.querySelectorAll('.js-plotly-plot')).map(
                    gd => gd.querySelectorAll('.scatterlayer .point').length),
                plot_titles: Array.from(document.querySelectorAll('.js-plotly-plot .gtitle')).map(t => t.textContent),
                images: document.images.length,
                broken_images: Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0
                    && !i.classList.contains('facekit-hover-face')).length,
                tables: document.querySelectorAll('table').length,
                text: document.body.innerText.slice(0, 20000),
            })"""
        )
        info["hover_face"] = False
        point = page.query_selector(".js-plotly-plot:has(.facekit-hover-face) .scatterlayer .trace:last-child .point")
        if point is not None:
            point.scroll_into_view_if_needed()
            box = point.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(500)
            info["hover_face"] = page.evaluate(
                "() => Array.from(document.querySelectorAll('.facekit-hover-face'))"
                ".some(i => i.style.display === 'block' && i.src.startsWith('data:image/jpeg'))"
            )
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    info["console_errors"] = errors
    return info
