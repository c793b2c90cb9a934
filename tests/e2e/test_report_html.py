"""The HTML report as a person sees it: written by `escalate report --html`, opened from a file://
URL in headless Chromium (Debian's `chromium`, installed by scripts/setup.sh), screenshotted, and
the charts' bars found in the screenshot's pixels by their colours, with the lengths the data
says. An empty or broken SVG leaves no such pixels, and a wrong scale gives the wrong lengths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops

from escalate import db
from escalate.cli import main
from escalate.models import Ticket
from escalate.report_html import CHART_COLOURS
from tests.cli.test_report import REPO, WINDOW, seed_history

WIDTH, HEIGHT = 1200, 2600
# No network here: without these Chromium stalls on refused connections (updates, sync, QUIC).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def screenshot(page: Path, png: Path, profile: Path) -> Image.Image:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run scripts/setup.sh (scripts/test.sh does) to install it"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    f"--window-size={WIDTH},{HEIGHT}", page.as_uri()],
                   check=True, timeout=90, capture_output=True)
    return Image.open(png).convert("RGB")


def bars(image: Image.Image, colour: str) -> list[tuple[int, int, int]]:
    """The horizontal runs of `colour` as (row, first x, length), one per pixel row it fills."""
    solid = Image.new("RGB", image.size, colour)
    red, green, blue = ImageChops.difference(image, solid).split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v <= 2 else 0)
    box = mask.getbbox()
    runs = []
    for y in range(box[1], box[3]) if box else ():
        row = mask.crop((0, y, image.width, y + 1)).getbbox()
        if row:
            runs.append((y, row[0], row[2] - row[0]))
    return runs


def segments(image: Image.Image, colour: str, y: int) -> int:
    """How many separate stretches of `colour` pixel row `y` holds (side-by-side vertical bars)."""
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    inside, count = False, 0
    for x in range(image.width):
        match = all(abs(a - b) <= 2 for a, b in zip(image.getpixel((x, y)), want))
        count += match and not inside
        inside = match
    return count


def bar_lengths(runs: list[tuple[int, int, int]]) -> list[int]:
    """The length of each bar (consecutive rows of one colour), top to bottom; the legend's
    swatches (10 px high) are not bars (14 px and more)."""
    groups: list[list[tuple[int, int, int]]] = []
    for run in runs:
        if groups and run[0] == groups[-1][-1][0] + 1:
            groups[-1].append(run)
        else:
            groups.append([run])
    return [group[0][2] for group in groups if len(group) >= 12]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[str, Image.Image]:
    tmp = tmp_path_factory.mktemp("report-html")
    env = {"ESCALATE_DB_URL": f"sqlite:///{tmp / 'escalate.db'}", "ESCALATE_RULES": str(REPO / "rules.yaml"),
           "ESCALATE_SECRET": "test-secret", "ESCALATE_NOW": ""}
    seed_history(env["ESCALATE_DB_URL"])
    db.connect(env["ESCALATE_DB_URL"])
    # customer text reaches the report's tables: it must show as text, never run
    Ticket.update(subject="Checkout is down <script>alert(1)</script>").where(Ticket.id == 2).execute()
    db.close()
    page = tmp / "report.html"
    result = CliRunner().invoke(main, ["report", *WINDOW, "--html", str(page)], env=env, catch_exceptions=False)
    db.close()
    assert result.exit_code == 0, result.output
    image = screenshot(page, tmp / "report.png", tmp / "chromium-profile")
    return page.read_text(encoding="utf-8"), image


def test_every_chart_rendered_with_the_datas_proportions(rendered):
    _html, image = rendered
    assert image.size == (WIDTH, HEIGHT)
    found = {name: bars(image, colour) for name, colour in CHART_COLOURS.items()}
    assert all(found.values()), {name: len(runs) for name, runs in found.items()}
    # tickets per tier 2, 1, 1: the first bar twice as long as the others
    tiers = bar_lengths(found["tiers"])
    assert len(tiers) == 3 and abs(tiers[0] - 2 * tiers[1]) <= 2 and tiers[1] == tiers[2]
    # time to acknowledge: tier 1 median 10 min, tier 3 median 75 min (the longest bar sets the scale)
    medians = bar_lengths(found["acknowledge"])
    assert len(medians) == 2 and abs(medians[1] / medians[0] - 7.5) < 0.3
    assert len(bar_lengths(found["acknowledge_p90"])) == 2
    # breaches: first response urgent 2, normal 1 (high and low have none: no bar)
    first = bar_lengths(found["breaches"])
    assert len(first) == 2 and abs(first[0] - 2 * first[1]) <= 2
    assert len(bar_lengths(found["breaches_resolution"])) == 2  # urgent 1, normal 1
    # reminders before #ack: one ticket after 1, one after 6 — two equal bars in a histogram of 0..6
    bottom = found["repeats"][-1][0]
    assert segments(image, CHART_COLOURS["repeats"], bottom) == 2
    top_row = found["repeats"][0][0]
    assert bottom - top_row >= 100 and segments(image, CHART_COLOURS["repeats"], top_row) == 2  # equal heights
    assert len(bar_lengths(found["rules"])) == 1
    # the charts sit side by side and one under another, not on top of each other
    tops = {name: runs[0][0] for name, runs in found.items()}
    lefts = {name: min(x for _y, x, _l in runs) for name, runs in found.items()}
    assert tops["breaches"] > tops["tiers"] and lefts["acknowledge"] > lefts["tiers"] + 300


def test_the_page_is_self_contained_and_escapes_customer_text(rendered):
    html, _image = rendered
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    without_svg_namespace = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_svg_namespace and "https://" not in without_svg_namespace
    assert "@media print" in html and html.count("<svg") == 5
    assert "Tickets opened 2026-11-01 00:00 UTC to 2026-11-10 00:00 UTC (drill tickets left out)" in html
