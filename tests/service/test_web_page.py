"""The web page at / in a real browser: Debian's chromium driven by Playwright (launched by path,
never ``playwright install``) against a real uvicorn on 127.0.0.1. Each view runs its bundled
sample and the rendered result is checked; a drawn digit is classified; no request leaves
127.0.0.1; a screenshot per view goes to ``test-artifacts/web/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service.conftest import running_server

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "web"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, base):
    """A page at 1280x800 that records every request leaving the server and every script error."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.outside, page.errors = [], []
    local = (base, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else page.outside.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(base + "/")
    page.wait_for_function("document.querySelector('#view-classify .model').options.length > 0")
    yield page
    assert page.outside == [], f"requests outside 127.0.0.1: {page.outside}"
    assert page.errors == [], page.errors
    page.close()


def run_sample(page, view: str, sample: str | None = None) -> None:
    page.click(f"#tab-{view}")
    page.click(f"#view-{view} [data-sample{'=' + repr(sample) if sample else ''}]")
    page.wait_for_selector(f"#view-{view}[data-state=done], #view-{view}[data-state=error]", timeout=90_000)
    assert page.inner_text(f"#view-{view} .error") == ""
    info = page.inner_text(f"#view-{view} .info")
    assert " v1 on CPU" in info and "total" in info and "ms" in info  # model, version, provider, timings


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def canvas_pixels(page, selector: str) -> np.ndarray:
    data = page.evaluate(
        """s => { const c = document.querySelector(s);
                  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""",
        selector,
    )
    return np.asarray(data, np.uint8).reshape(-1, 4)


def image_loaded(page, selector: str) -> bool:
    return page.evaluate(
        "s => { const i = document.querySelector(s); return i.complete && i.naturalWidth > 0; }", selector
    )


def test_classify_sample_shows_label_bars_and_heat_map(page) -> None:
    run_sample(page, "classify", "digits/digit_7_white_on_black.png")
    assert page.get_attribute("#view-classify", "data-top") == "7"
    bars = page.locator("#view-classify .bars li")
    assert bars.count() == 5 and bars.first.locator(".label").inner_text() == "7"
    assert image_loaded(page, "#view-classify .heatmap") and image_loaded(page, "#view-classify .preview")
    shot(page, "classify")


def test_black_on_white_sample_says_it_was_inverted(page) -> None:
    run_sample(page, "classify", "digits/digit_2_black_on_white.png")
    assert page.get_attribute("#view-classify", "data-top") == "2"
    assert "inverted" in page.inner_text("#view-classify .warnings")


def test_a_digit_drawn_on_the_canvas_is_classified(page) -> None:
    box = page.locator("#canvas-digit").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    # a "1": one vertical stroke down the middle
    page.mouse.move(x + 0.5 * w, y + 0.15 * h)
    page.mouse.down()
    for t in np.linspace(0.15, 0.85, 15):
        page.mouse.move(x + 0.5 * w, y + t * h)
    page.mouse.up()
    assert (canvas_pixels(page, "#canvas-digit")[:, 0] > 128).mean() > 0.02  # the stroke is on the canvas
    page.click("#draw-use")
    page.wait_for_selector("#view-classify[data-state=done]", timeout=60_000)
    assert page.get_attribute("#view-classify", "data-top") == "1"


def test_segment_sample_shows_overlay_count_and_table(page) -> None:
    run_sample(page, "segment")
    n = int(page.get_attribute("#view-segment", "data-objects"))
    assert n > 20 and f"{n} objects" in page.inner_text("#view-segment .count")
    assert page.locator("#view-segment .objects tbody tr").count() == min(n, 500)
    assert image_loaded(page, "#view-segment .seg-image")
    overlay = page.get_attribute("#view-segment .seg-image", "src")
    page.check('#view-segment input[value="mask"]')
    assert page.get_attribute("#view-segment .seg-image", "src") != overlay  # the toggle switches images
    with page.expect_download() as dl:
        page.click("#view-segment .dl-csv")
    assert dl.value.suggested_filename == "objects.csv"
    shot(page, "segment")


def test_segment_composite_sample_picks_the_channel_with_the_cells(page) -> None:
    run_sample(page, "segment", "cells/cells_composite.png")
    assert "channel=red|green|blue" in page.inner_text("#view-segment .warnings")  # brightness, and how to pick
    default = int(page.get_attribute("#view-segment", "data-objects"))
    page.select_option("#view-segment .channel", "blue")  # the channel choice reaches the service
    page.click("#view-segment .run")
    page.wait_for_function(
        f"document.querySelector('#view-segment').dataset.state === 'done' && "
        f"document.querySelector('#view-segment').dataset.objects !== '{default}'"
    )
    assert int(page.get_attribute("#view-segment", "data-objects")) > 50 > default
    assert "channel=" not in page.inner_text("#view-segment .warnings")
    blue = page.get_attribute("#view-segment", "data-objects")
    page.check("#view-segment .invert")  # the invert choice reaches the service: bright cells turned dark...
    page.click("#view-segment .run")
    page.wait_for_function(f"document.querySelector('#view-segment').dataset.objects !== '{blue}'")
    assert "mostly bright" in page.inner_text("#view-segment .warnings")  # ...on a bright background, and it says so


def test_denoise_sample_shows_before_and_after(page) -> None:
    run_sample(page, "denoise", "denoise/noisy_camera_s25.png")
    assert image_loaded(page, "#view-denoise .before") and image_loaded(page, "#view-denoise .after")
    assert page.get_attribute("#view-denoise .before", "src") != page.get_attribute("#view-denoise .after", "src")
    assert "sigma used" in page.inner_text("#view-denoise .sigma-used") and "estimated" in page.inner_text(
        "#view-denoise .sigma-used"
    )
    page.fill("#view-denoise .slider", "20")
    assert "20%" in page.get_attribute("#view-denoise .after", "style")
    page.select_option("#view-denoise .ensemble", "1")  # the self-ensemble choice reaches the service
    page.click("#view-denoise .run")
    page.wait_for_function("document.querySelector('#view-denoise .sigma-used').textContent.endsWith('· 1 pass')")
    assert "gaussian noise" in page.inner_text("#view-denoise .sigma-used")
    page.select_option("#view-denoise .noise", "poisson")  # the noise model choice reaches the service
    page.click("#view-denoise .run")
    page.wait_for_function("document.querySelector('#view-denoise .sigma-used').textContent.includes('poisson')")
    assert "pixel-shuffled" not in page.inner_text("#view-denoise .sigma-used")
    page.check("#view-denoise .pd")  # the camera-noise choice reaches the service
    page.click("#view-denoise .run")
    page.wait_for_function("document.querySelector('#view-denoise .sigma-used').textContent.includes('pixel-shuffled')")
    shot(page, "denoise")


def test_files_the_browser_cannot_draw_are_previewed_by_the_server(page) -> None:
    """A 16-bit fluorescence TIFF before, and a float32 TIFF before and after denoising: Chromium draws no
    TIFF, so the page shows the server's /preview of each - before 2026-12-06 both images stayed empty."""
    import io

    import tifffile

    page.click("#tab-denoise")
    body = (ROOT / "examples" / "cells" / "cells_16bit.tif").read_bytes()
    page.set_input_files("#view-denoise .file", files=[{"name": "c.tif", "mimeType": "image/tiff", "buffer": body}])
    page.wait_for_selector("#view-denoise .before[data-preview=server]", state="attached", timeout=30_000)
    page.wait_for_function("(() => { const i = document.querySelector('#view-denoise .before'); "
                           "return i.complete && i.naturalWidth > 0; })()", timeout=30_000)  # fmt: skip
    noisy = np.random.default_rng(0).normal(0.5, 0.1, (96, 128)).astype(np.float32)
    buf = io.BytesIO()
    tifffile.imwrite(buf, noisy)
    page.set_input_files(
        "#view-denoise .file", files=[{"name": "f.tif", "mimeType": "image/tiff", "buffer": buf.getvalue()}]
    )
    page.click("#view-denoise .run")
    page.wait_for_selector("#view-denoise[data-state=done]", timeout=60_000)
    for img in ("before", "after"):
        page.wait_for_selector(f"#view-denoise .{img}[data-preview=server]", state="attached", timeout=30_000)
        page.wait_for_function(f"(() => {{ const i = document.querySelector('#view-denoise .{img}'); "
                               "return i.complete && i.naturalWidth === 128; })()", timeout=30_000)  # fmt: skip
    before, after = (page.get_attribute(f"#view-denoise .{i}", "data-range") for i in ("before", "after"))
    assert before and after == before  # the result shown with its input's black and white levels
    shot(page, "denoise_tiff")


def test_nowcast_sample_animates_observed_then_forecast(page, base) -> None:
    run_sample(page, "nowcast")
    card = httpx.get(f"{base}/models/unet_nowcast").json()["card"]
    frames = card["radar"]["frames_in"] + card["radar"]["max_steps"]
    assert int(page.get_attribute("#view-nowcast .radar", "data-frames")) == frames
    pixels = canvas_pixels(page, "#view-nowcast .radar")
    assert len({tuple(p) for p in pixels[::97]}) > 3  # a coloured radar picture, not a blank canvas
    labels = set()
    # sampled every 150 ms (a 650 ms sampling could step over one frame of the loop on a busy machine),
    # for up to two full loops
    for _ in range(2 * (frames + 2) * 650 // 150):
        labels.add(page.inner_text("#view-nowcast .frame-label"))
        if any(s.startswith("observed") for s in labels) and "forecast +60 min" in labels:
            break
        page.wait_for_timeout(150)
    assert any(s.startswith("observed") for s in labels) and "forecast +60 min" in labels
    assert page.locator("#view-nowcast .skill tbody tr").count() >= 3  # model, persistence, extrapolation
    shot(page, "nowcast")


def test_api_errors_show_the_api_message(page) -> None:
    page.set_input_files("#view-classify .file", files=[{"name": "x.png", "mimeType": "image/png", "buffer": b"no"}])
    page.click("#view-classify .run")
    page.wait_for_selector("#view-classify[data-state=error]", timeout=30_000)
    assert "cannot be decoded" in page.inner_text("#view-classify .error") or "image" in page.inner_text(
        "#view-classify .error"
    )


def test_narrow_window_and_keyboard_tabs(page) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    page.focus("#tab-classify")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-segment", "aria-selected") == "true"
    assert page.is_visible("#view-segment .run") and not page.is_visible("#view-classify .run")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # nothing forces a sideways scroll
    shot(page, "narrow")


def test_docs_render_offline(page, base) -> None:
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert page.locator(".opblock-summary-path", has_text="/classify").count() >= 1
    page.goto(base + "/redoc")
    page.wait_for_selector("redoc h1, [role=navigation]", timeout=30_000)
    shot(page, "docs")
