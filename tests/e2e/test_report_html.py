"""The HTML report as a person sees it: written by `escalate report --html`, opened from a file://
URL in headless Chromium (Debian's `chromium`, installed by scripts/setup.sh), screenshotted, and
the charts' bars found in the screenshot's pixels by their colours, with the lengths the data
says. An empty or broken SVG leaves no such pixels, and a wrong scale gives the wrong lengths."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.reports.html import CHART_COLOURS
from escalate.store import db
from escalate.store.models import Ticket
from PIL import Image, ImageChops

from tests.cli.test_report import REPO, WINDOW, seed_history
from tests.cli.test_report_trend import BERLIN_WEEKS, seed_weeks

WIDTH, HEIGHT = 1200, 2600
# No network here: without these Chromium stalls on refused connections (updates, sync, QUIC).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


# Skipped only where Debian's chromium is not installed at all (scripts/setup.sh installs it).
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="headless Chromium is not installed: run scripts/setup.sh (it installs "
                                       "Debian's chromium) to check the rendered report")


def screenshot(page: Path, png: Path, profile: Path, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    subprocess.run([shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    f"--window-size={size[0]},{size[1]}", page.as_uri()],
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


def bar_lengths(runs: list[tuple[int, int, int]], rows: int = 12) -> list[int]:
    """The length of each bar (consecutive rows of one colour), top to bottom; the legend's
    swatches (10 px high) are not bars (14 px and more; `rows`: fewer on a chart drawn smaller)."""
    groups: list[list[tuple[int, int, int]]] = []
    for run in runs:
        if groups and run[0] == groups[-1][-1][0] + 1:
            groups[-1].append(run)
        else:
            groups.append([run])
    return [group[0][2] for group in groups if len(group) >= rows]


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
    # every chart drew; here each tier's median is its p90 (one ticket each: no range to draw), and
    # the period before the window is empty
    assert all(runs for name, runs in found.items() if name not in ("acknowledge_p90", "trend_previous")), \
        {name: len(runs) for name, runs in found.items()}
    assert not bar_lengths(found["acknowledge_p90"]) and not bar_lengths(found["trend_previous"])  # legend only
    # tickets per tier 2, 1, 1: the first bar twice as long as the others
    tiers = bar_lengths(found["tiers"])
    assert len(tiers) == 3 and abs(tiers[0] - 2 * tiers[1]) <= 2 and tiers[1] == tiers[2]
    # time to acknowledge: tier 1 median 10 min, tier 3 75 min — of one order, so on a time axis
    # from zero, the second bar 7.5 times the first (far-apart times go on a log axis: see below)
    medians = bar_lengths(found["acknowledge"])
    assert len(medians) == 2 and abs(medians[1] / medians[0] - 7.5) < 0.3
    # breaches as a share of each severity's tickets: first response urgent 2 of 2, normal 1 of 3
    # (high and low have no tickets: no bar)
    first = bar_lengths(found["breaches"])
    assert len(first) == 2 and abs(first[0] - 3 * first[1]) <= 3
    resolution = bar_lengths(found["breaches_resolution"])  # urgent 1 of 2, normal 1 of 3
    assert len(resolution) == 2 and abs(resolution[0] / resolution[1] - 1.5) < 0.05
    # reminders before #ack: one ticket after 1, one after 6 — two equal bars in a histogram of 0..6
    bottom = found["repeats"][-1][0]
    assert segments(image, CHART_COLOURS["repeats"], bottom) == 2
    top_row = found["repeats"][0][0]
    assert bottom - top_row >= 100 and segments(image, CHART_COLOURS["repeats"], top_row) == 2  # equal heights
    assert len(bar_lengths(found["rules"])) == 1
    # the trend comes first, across the page; the other charts sit side by side and one under another
    tops = {name: runs[0][0] for name, runs in found.items() if runs}
    lefts = {name: min(x for _y, x, _l in runs) for name, runs in found.items() if runs}
    assert tops["trend"] < min(top for name, top in tops.items() if not name.startswith("trend"))
    assert tops["breaches"] > tops["tiers"] and lefts["acknowledge"] > lefts["tiers"] + 300


def test_the_page_is_self_contained_and_escapes_customer_text(rendered):
    html, _image = rendered
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    without_svg_namespace = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_svg_namespace and "https://" not in without_svg_namespace
    assert "@media print" in html and html.count("<svg") == 6
    assert "Tickets opened 2026-11-01 00:00 UTC to 2026-11-10 00:00 UTC (drill tickets left out)" in html


def columns(image: Image.Image, colour: str) -> list[tuple[int, int, int]]:
    """The vertical bars of `colour` as (left x, width, height), left to right; a legend swatch
    (10 px high) is not a bar."""
    solid = Image.new("RGB", image.size, colour)
    red, green, blue = ImageChops.difference(image, solid).split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v <= 2 else 0)
    found: list[list[int]] = []  # [left, width, top, bottom]
    box = mask.getbbox()
    for x in range(box[0], box[2]) if box else ():
        column = mask.crop((x, 0, x + 1, image.height)).getbbox()
        if not column:
            continue
        if found and found[-1][0] + found[-1][1] == x and found[-1][2:] == [column[1], column[3]]:
            found[-1][1] += 1
        else:
            found.append([x, 1, column[1], column[3]])
    return [(left, width, bottom - top) for left, width, top, bottom in found if bottom - top > 10 or width > 12]


def render_page(tmp: Path, db_url: str, rules: Path, window: list[str]) -> tuple[Path, Image.Image]:
    env = {"ESCALATE_DB_URL": db_url, "ESCALATE_RULES": str(rules), "ESCALATE_SECRET": "test-secret",
           "ESCALATE_NOW": ""}
    page = tmp / "report.html"
    result = CliRunner().invoke(main, ["report", *window, "--html", str(page)], env=env, catch_exceptions=False)
    db.close()
    assert result.exit_code == 0, result.output
    return page, screenshot(page, tmp / "report.png", tmp / "chromium-profile")


@pytest.fixture(scope="module")
def weekly(tmp_path_factory) -> tuple[Path, Image.Image]:
    """Three weeks in Berlin and the three before them (tests/cli/test_report_trend.py works out every number)."""
    tmp = tmp_path_factory.mktemp("report-trend-html")
    rules = tmp / "rules.yaml"
    rules.write_text(re.sub(r"^timezone: UTC$", "timezone: Europe/Berlin", (REPO / "rules.yaml").read_text(),
                            count=1, flags=re.M))
    url = f"sqlite:///{tmp / 'escalate.db'}"
    seed_weeks(url)
    return render_page(tmp, url, rules, BERLIN_WEEKS)


def test_the_trend_chart_draws_each_week_beside_the_week_a_period_earlier(weekly):
    _page, image = weekly
    now = columns(image, CHART_COLOURS["trend"])
    before = columns(image, CHART_COLOURS["trend_previous"])
    # three panels of three weeks: escalated tickets, breach share, median time to acknowledge
    assert len(now) == 9, now
    panels = [now[0:3], now[3:6], now[6:9]]
    starts = [panel[0][0] for panel in panels] + [image.width]
    earlier = [[bar for bar in before if starts[p] <= bar[0] < starts[p + 1]] for p in range(3)]
    height = lambda bars: [h for _x, _w, h in bars]  # noqa: E731
    # escalated: 1, 1, 1 this period; 1, 0, 0 before — one light bar, right beside week 45's
    assert len(set(height(panels[0]))) == 1 and height(earlier[0]) == height(panels[0])[:1]
    assert 0 <= earlier[0][0][0] - (panels[0][0][0] + panels[0][0][1]) <= 1
    # breaches, share of tickets: 50%, 100%, 100%; before 50%, (no tickets: no bar), 100%
    half, full, _ = height(panels[1])
    assert abs(full - 2 * half) <= 2 and height(panels[1])[2] == full
    assert height(earlier[1]) == [half, full]
    # median time to acknowledge, logarithmic from 5 min: 30 min, 18 h, 10 min; before 2 h
    thirty, eighteen, ten = height(panels[2])
    assert abs(eighteen / thirty - math.log(216) / math.log(6)) < 0.1
    assert abs(ten / thirty - math.log(2) / math.log(6)) < 0.1
    [(_x, _w, two_hours)] = earlier[2]
    assert abs(two_hours / thirty - math.log(24) / math.log(6)) < 0.1


def test_a_range_runs_from_the_median_to_the_p90_on_the_log_axis(weekly):
    """Tier 1: median 10 min, p90 30 min; tier 2 takes 18 h — far apart, so the time axis is
    logarithmic (from 5 min to 1 d), and the light range starts where the dark bar ends."""
    _page, image = weekly
    medians = bars(image, CHART_COLOURS["acknowledge"])
    ranges = bars(image, CHART_COLOURS["acknowledge_p90"])
    rows = {y: (x, length) for y, x, length in medians if length > 10}  # not the legend's swatch
    joined = [(rows[y], (x, length)) for y, x, length in ranges if y in rows]
    assert joined, "no range drawn on the median's line"
    (median_x, median_length), (range_x, range_length) = joined[0]
    assert range_x == median_x + median_length  # the range continues the bar
    # 5 min to 10 min, then 10 min to 30 min: log 2 and log 3
    assert abs(range_length / median_length - math.log(3) / math.log(2)) < 0.1


@pytest.mark.parametrize("history", ["days", "weeks"])
def test_the_report_prints_on_two_pages(history: str, rendered, weekly, tmp_path: Path):
    page = weekly[0] if history == "weeks" else tmp_path / "days.html"
    if history == "days":
        page.write_text(rendered[0], encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    subprocess.run([shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
                   check=True, timeout=90, capture_output=True)
    # Chromium's PDF keeps one "/Type /Page" object per page (and one "/Type /Pages" for the tree)
    pages = re.findall(rb"/Type\s*/Page(?![s\w])", pdf.read_bytes())
    assert len(pages) == 2


def test_the_trend_reads_in_the_team_zone_with_the_previous_period_beside_it(weekly):
    html = weekly[0].read_text(encoding="utf-8")
    assert 'id="chart-trend"' in html and "Per ISO week in Europe/Berlin" in html
    # Monday 00:00 in Berlin opens each week: the periods read as whole dates there
    assert "this period, 2 Nov 2026 to 23 Nov 2026" in html
    assert "the period before, 12 Oct 2026 to 2 Nov 2026" in html
    assert ("Escalated 3 (previous period 1); tickets that broke a target 75% (previous period 67%); "
            "median time to acknowledge 30m (previous period 2h)") in html
    # the trend table: week 46 and the same stretch before it (no tickets then)
    row = re.search(r"<tr><td>2026-W46</td>(.*?)</tr>", html).group(1)
    assert re.sub(r"<[^>]+>", " ", row).split() == ["1", "1", "1", "(100%)", "18h", "18h", "0", "0", "0", "(-)", "-", "-"]


PRINT_WIDTH = 703  # an A4 page's width less the 12 mm margins, in CSS pixels


def edges(image: Image.Image, colour: str, shortest: int) -> int:
    """How many straight lines of `colour` at least `shortest` pixels long run across the image (rows)."""
    solid = Image.new("RGB", image.size, colour)
    red, green, blue = ImageChops.difference(image, solid).split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 1 if v <= 2 else 0)
    count = 0
    for y in range(image.height):
        run = 0
        for value in mask.crop((0, y, image.width, y + 1)).tobytes() + b"\0":
            if value:
                run += 1
            else:
                count += run >= shortest
                run = 0
    return count


def test_the_print_layout_keeps_every_card_and_chart_whole(rendered, tmp_path: Path):
    """The print styles at an A4 page's width (Chromium prints with them; a screenshot shows them when
    they apply to the screen): the cards keep all four borders, and each chart shrinks into its half
    of the page with its proportions, instead of running past the page's edge."""
    html, _image = rendered
    page = tmp_path / "print.html"
    page.write_text(html.replace("@media print {", "@media all {"), encoding="utf-8")
    image = screenshot(page, tmp_path / "print.png", tmp_path / "profile", size=(PRINT_WIDTH, 2400))
    cards = html.count('<div class="card">')
    assert cards == 9
    # every card's top and bottom border, and (the image turned) its left and right border
    assert edges(image, "#a0aec0", 40) == 2 * cards
    assert edges(image.transpose(Image.Transpose.ROTATE_90), "#a0aec0", 30) == 2 * cards
    # the charts drawn at about two thirds of their size: bars 9 px high, the legend's swatches 6
    tiers = bar_lengths(bars(image, CHART_COLOURS["tiers"]), rows=8)
    assert len(tiers) == 3 and abs(tiers[0] - 2 * tiers[1]) <= 3
    medians = bar_lengths(bars(image, CHART_COLOURS["acknowledge"]), rows=8)  # the right-hand column
    assert len(medians) == 2 and abs(medians[1] / medians[0] - 7.5) < 0.4
    # ... and its longest bar ends well inside the page, its label after it (at full size it would be cut)
    assert max(x + length for _y, x, length in bars(image, CHART_COLOURS["acknowledge"])) < PRINT_WIDTH - 60
    trend = bars(image, CHART_COLOURS["trend"])
    assert trend and max(x + length for _y, x, length in trend) < PRINT_WIDTH - 20
