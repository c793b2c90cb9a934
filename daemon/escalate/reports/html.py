"""The report as one self-contained HTML file: summary, charts drawn as inline SVG, and tables.

No script, no font or stylesheet from the network: the file reads the same offline, attached to
a mail or printed (print styles keep charts and tables whole on a page). Every value from the
database — subjects and addresses are customer text — is HTML-escaped.

The trend comes first, across the page: this period's weeks (or days) beside the period before.
Each chart has its own bar colour (CHART_COLOURS); tests find the charts in a screenshot by it.
The charts themselves (axes, scales, bars) are charts.py's.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timezone
from html import escape
from typing import Any, Sequence

from escalate.reports.charts import Panel, Series, hbar_chart, trend_chart, vbar_chart
from escalate.reports.views import duration, percent, when

CHART_COLOURS = {
    "tiers": "#2b6cb0",  # blue: tickets brought to each tier
    "acknowledge": "#2f855a",  # green: median time to acknowledge (on to the p90 in the light shade)
    "acknowledge_p90": "#9ae6b4",
    "breaches": "#c53030",  # red: first-response breaches, as a share of the tickets
    "breaches_resolution": "#dd6b20",  # orange: resolution breaches, as a share of the tickets
    "repeats": "#6b46c1",  # purple: reminders before #ack
    "rules": "#2c7a7b",  # teal: escalations per rule
    "trend": "#b83280",  # magenta: this period in the trend
    "trend_previous": "#f3a6c8",  # light magenta: the period before it
}


def _figure(title: str, svg: str | None, note: str = "", wide: bool = False) -> str:
    """A chart in its card; a chart with nothing to draw says so instead of showing an empty frame."""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    body = svg if svg is not None else '<p class="note">None in this period.</p>'
    return (f'<figure class="chart{" wide" if wide else ""}"><figcaption>{escape(title)}</figcaption>'
            f'{body}{note_html}</figure>')


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           wide: bool = False) -> str:
    section = '<section class="wide">' if wide else "<section>"
    if not rows:
        return f'{section}<h3>{escape(caption)}</h3><p class="note">None in this period.</p></section>'
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{escape("-" if v is None else str(v))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'{section}<h3>{escape(caption)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>'


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a202c;
       margin: 24px auto; max-width: 1120px; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #cbd5e0; }
h3 { font-size: 1em; margin: 16px 0 6px; }
.meta, .note { color: #4a5568; font-size: 0.9em; margin: 4px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #a0aec0; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 1.5em; }
.card small { display: block; color: #4a5568; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 12px 24px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #cbd5e0; border-radius: 6px; min-width: 0; }
figure.chart.wide, section.wide { grid-column: 1 / -1; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg text { fill: #1a202c; font-family: inherit; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { background: #f7fafc; } .num { text-align: right; font-variant-numeric: tabular-nums; } td.num { white-space: nowrap; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 0 24px; }
@page { size: A4; margin: 12mm; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { margin: 0; max-width: none; padding: 0; font-size: 9pt; line-height: 1.3; }
  h2, h3 { break-after: avoid; } h2 { margin: 12px 0 6px; } h3 { margin: 8px 0 4px; }
  .cards { gap: 6px; margin: 8px 0; } .card { padding: 4px 10px; min-width: 0; }
  /* a card, chart or table row is never cut by a page break: every border stays whole; a long
     table may continue on the next page (its header again) rather than leave a page half empty */
  .card, figure.chart, tr { break-inside: avoid; }
  /* minmax(0, 1fr): a wide table or chart shrinks into its half of the page instead of pushing past it */
  .charts, .tables { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 8px 12px; }
  table { font-size: 0.85em; }
  td { overflow-wrap: anywhere; }  /* a long address wraps; headers keep their words whole */
  figure.chart { padding: 4px; }
  th, td { padding: 2px 6px; }
}
"""


def _local_date(text: str, zone: str) -> str:
    """An ISO time as its date in the trend's zone, "2 Nov 2026"."""
    local = datetime.fromisoformat(text).astimezone(timezone.utc if zone == "UTC" else zoneinfo.ZoneInfo(zone))
    return f"{local.day} {local.strftime('%b %Y')}"


def _trend_figure(trend: dict[str, Any]) -> str:
    buckets = trend["buckets"]
    period, previous = trend["period"], trend["previous_period"]
    zone, title = trend["zone"], f"Trend per {trend['unit']}"
    if not (period["tickets"] or previous["tickets"]):
        return _figure(title, None, wide=True)
    # "W45" for a week, the day of the month for a day (the legend gives the months)
    names = [b["label"].split("-", 1)[1] if trend["unit"] == "week" else str(int(b["label"][8:])) for b in buckets]
    legend = (f"this period, {_local_date(period['since'], zone)} to {_local_date(period['until'], zone)}",
              f"the period before, {_local_date(previous['since'], zone)} to {_local_date(previous['until'], zone)}")
    svg = trend_chart("chart-trend", title, names, [
        Panel("Escalated tickets", [b["escalations"] for b in buckets],
              [b["previous"]["escalations"] for b in buckets], "count"),
        Panel("Breaches, share of tickets", [b["breach_share"] for b in buckets],
              [b["previous"]["breach_share"] for b in buckets], "share"),
        Panel("Time to acknowledge, median", [b["ack_median_seconds"] for b in buckets],
              [b["previous"]["ack_median_seconds"] for b in buckets], "duration"),
    ], (CHART_COLOURS["trend"], CHART_COLOURS["trend_previous"]), legend)
    note = (f"Per {'ISO week' if trend['unit'] == 'week' else 'day'} in {zone}, by when the ticket was opened; "
            f"each beside the same stretch one period earlier. Escalated {period['escalations']} "
            f"(previous period {previous['escalations']}); "
            f"tickets that broke a target {percent(period['breach_share'])} "
            f"(previous period {percent(previous['breach_share'])}); median time to acknowledge "
            f"{duration(period['ack_median_seconds'])} (previous period {duration(previous['ack_median_seconds'])}).")
    return _figure(title, svg, note, wide=True)


def _trend_table(trend: dict[str, Any]) -> str:
    def cells(b: dict[str, Any]) -> list[Any]:
        return [b["tickets"], b["escalations"], f"{b['breaches']} ({percent(b['breach_share'])})",
                duration(b["ack_median_seconds"]), duration(b["ack_p90_seconds"])]
    rows = [[b["label"] + ("" if b["whole"] else " (part)"), *cells(b), *cells(b["previous"])] for b in trend["buckets"]]
    rows.append(["whole period", *cells(trend["period"]), *cells(trend["previous_period"])])
    return _table(f"Trend per {trend['unit']} (previous period on the right)",
                  [trend["unit"].capitalize(), "Tickets", "Escalated", "Breached", "Ack median", "Ack p90",
                   "Tickets", "Escalated", "Breached", "Ack median", "Ack p90"], rows, range(1, 11), wide=True)


def render(data: dict[str, Any], generated_at: str) -> str:
    window, totals, top = data["window"], data["totals"], data["top_tier"]
    tiers = data["escalations_per_tier"]
    ack = data["time_to_acknowledge"]
    breaches = data["sla_breaches"]["by_severity"]
    shares = data["sla_breaches"]["share"]
    repeats = data["repeats_before_ack"]
    rules = data["escalations_per_rule"][:12]
    trend = data["trend"]
    tier_names = [f"{t['tier']} {t['name']}" for t in ack["by_tier"]]
    charts = [
        _figure("Tickets escalated to each tier", hbar_chart(
            "chart-tiers", "Tickets escalated to each tier", [f"{t['tier']} {t['name']}" for t in tiers],
            [Series("tickets", CHART_COLOURS["tiers"], [t["tickets"] for t in tiers])])),
        _figure("Time to acknowledge, by tier", hbar_chart(
            "chart-acknowledge", "Time to acknowledge by tier: median, then on to the p90", tier_names,
            [Series("median", CHART_COLOURS["acknowledge"], [t["median_seconds"] for t in ack["by_tier"]]),
             Series("to the p90", CHART_COLOURS["acknowledge_p90"], [t["p90_seconds"] for t in ack["by_tier"]])],
            fmt=duration, scale="duration", ranged=True),
            "From the moment an escalation began to the first #ack, once per ticket; the time axis is "
            "logarithmic when the times are far apart."),
        _figure("SLA breaches, share of tickets by severity", hbar_chart(
            "chart-breaches", "SLA breaches as a share of each severity's tickets", [b["severity"] for b in breaches],
            [Series("first response", CHART_COLOURS["breaches"], [b["first_response_breach_share"] for b in breaches],
                    [f"{b['first_response_breached']} of {b['tickets']}, {percent(b['first_response_breach_share'])}"
                     for b in breaches]),
             Series("resolution", CHART_COLOURS["breaches_resolution"], [b["resolution_breach_share"] for b in breaches],
                    [f"{b['resolution_breached']} of {b['tickets']}, {percent(b['resolution_breach_share'])}"
                     for b in breaches])], scale="share"),
            "Counted in each severity's working hours; time waiting on the customer left out."),
        _figure("Reminders before an acknowledgement", vbar_chart(
            "chart-repeats", "Reminders sent before the #ack", [str(h["repeats"]) for h in repeats["histogram"]],
            [h["tickets"] for h in repeats["histogram"]], CHART_COLOURS["repeats"], "reminders before #ack")
            if repeats["histogram"] else None),
        _figure("Escalations per rule", hbar_chart(
            "chart-rules", "Tickets each rule escalated", [r["rule"] for r in rules],
            [Series("tickets", CHART_COLOURS["rules"], [r["tickets"] for r in rules])])),
    ]
    previous = trend["previous_period"]
    cards = [("tickets opened", totals["tickets"], f"previous period {previous['tickets']}"),
             ("escalated", totals["escalated"], f"previous period {previous['escalations']}"),
             ("acknowledged", totals["acknowledged"], ""), ("resolved", totals["resolved"], ""),
             (f"reached tier {top['level']}", totals["reached_top_tier"], ""),
             ("unanswered to the end", totals.get("ladder_exhausted", 0), ""),
             ("first-response breaches", data["sla_breaches"]["total"]["first_response"],
              f"{percent(shares['first_response'])} of tickets"),
             ("resolution breaches", data["sla_breaches"]["total"]["resolution"],
              f"{percent(shares['resolution'])} of tickets"),
             ("tickets that broke a target", data["sla_breaches"]["breached_tickets"],
              f"{percent(shares['tickets'])}; previous period {percent(previous['breach_share'])}")]
    tables = [
        _trend_table(trend),
        _table("Escalations per tier", ["Tier", "Name", "Tickets", "Notifications", "Reminders"],
               [[t["tier"], t["name"], t["tickets"], t["notifications"], t["reminders"]] for t in tiers], (0, 2, 3, 4)),
        _table("Escalations per rule", ["Rule", "Tickets", "Acknowledged", "Ack median", "Ack p90"],
               [[r["rule"], r["tickets"], r["acknowledged"], duration(r["ack_median_seconds"]),
                 duration(r["ack_p90_seconds"])] for r in data["escalations_per_rule"]], (1, 2, 3, 4)),
    ]
    for key, title in (("time_to_acknowledge", "Time to acknowledge"), ("time_to_resolve", "Time to resolve")):
        rows = [[f"tier {r['tier']} {r['name']}" if r["tier"] is not None else r["name"], r["count"],
                 duration(r["median_seconds"]), duration(r["p90_seconds"])] for r in data[key]["by_tier"]]
        rows += [[f"severity {r['severity']}", r["count"], duration(r["median_seconds"]), duration(r["p90_seconds"])]
                 for r in data[key]["by_severity"]]
        tables.append(_table(title, ["By", "Count", "Median", "p90"], rows, (1, 2, 3)))
    tables.append(_table("SLA breaches (targets in working time)", ["Severity", "Tickets", "First response",
                                                                    "Breached", "Resolution", "Breached"],
                         [[b["severity"], b["tickets"], duration(b["first_response_target_seconds"]),
                           f"{b['first_response_breached']} ({percent(b['first_response_breach_share'])})",
                           duration(b["resolution_target_seconds"]),
                           f"{b['resolution_breached']} ({percent(b['resolution_breach_share'])})"] for b in breaches],
                         (1, 2, 3, 4, 5), wide=True))
    tables.append(_table("Recurring issues (same subject)", ["Subject", "Tickets", "Customers", "Escalated", "Latest"],
                         [[r["subject"], r["tickets"], r["customers"], r["escalated"], r["latest_ref"]]
                          for r in data["recurring_issues"]], (1, 2, 3, 4)))
    tables.append(_table("Senders behind most escalations", ["Sender", "Escalated tickets"],
                         [[s["requester"], s["escalated_tickets"]] for s in data["top_senders"]], (1,)))
    tables.append(_table("Domains behind most escalations", ["Domain", "Escalated tickets", "Senders"],
                         [[d["domain"], d["escalated_tickets"], d["senders"]] for d in data["top_domains"]], (1, 2)))
    top_table = _table(f"Tickets that reached tier {top['level']} ({top['name']}): {top['count']}",
                       ["Ref", "Severity", "Status", "Opened", "Requester", "Subject"],
                       [[t["ref"], t["severity"], t["status"], when(t["created_at"]), t["requester"], t["subject"]]
                        for t in top["tickets"]])
    drills = "drills included" if window["drills_included"] else "drill tickets left out"
    share = repeats["first_notice_share"]
    repeat_line = (f"{share * 100:.0f}% of acknowledged tickets were taken at the first notice; "
                   f"{repeats['mean']} reminders on average." if share is not None else "No acknowledgements yet.")
    card_html = "".join(f'<div class="card"><b>{v}</b>{escape(k)}{f"<small>{escape(sub)}</small>" if sub else ""}</div>'
                        for k, v, sub in cards)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Escalation report {escape(when(window['since']))} to {escape(when(window['until']))}</title>
<style>{STYLE}</style></head>
<body>
<h1>Escalation report</h1>
<p class="meta">Tickets opened {escape(when(window['since']))} to {escape(when(window['until']))} ({drills}).
Generated {escape(generated_at)} by escalate.</p>
<div class="cards">{card_html}</div>
<h2>Charts</h2>
<p class="note">{escape(repeat_line)}</p>
<div class="charts">{_trend_figure(trend)}{''.join(charts)}</div>
<h2>Details</h2>
<div class="tables">{''.join(tables)}</div>
{top_table}
</body>
</html>
"""
