"""The report as one self-contained HTML file: summary, charts drawn as inline SVG, and tables.

No script, no font or stylesheet from the network: the file reads the same offline, attached to
a mail or printed (print styles keep charts and tables whole on a page). Every value from the
database — subjects and addresses are customer text — is HTML-escaped.

Each chart has its own bar colour (CHART_COLOURS); tests find the charts in a screenshot by it.
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable, Sequence

from .views import duration, when

CHART_COLOURS = {
    "tiers": "#2b6cb0",  # blue: tickets brought to each tier
    "acknowledge": "#2f855a",  # green: median time to acknowledge (p90 in the light shade)
    "acknowledge_p90": "#9ae6b4",
    "breaches": "#c53030",  # red: first-response breaches
    "breaches_resolution": "#dd6b20",  # orange: resolution breaches
    "repeats": "#6b46c1",  # purple: reminders before #ack
    "rules": "#2c7a7b",  # teal: escalations per rule
}
WIDTH = 520
BAR = 18
GAP = 10
LABEL = 170  # room for the category names left of the bars

Series = tuple[str, str, Sequence[float | None]]  # (legend name, colour, one value per label)


def _svg(chart_id: str, title: str, width: int, height: int, body: list[str]) -> str:
    return (f'<svg id="{chart_id}" role="img" aria-labelledby="{chart_id}-title" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" shape-rendering="crispEdges">'
            f'<title id="{chart_id}-title">{escape(title)}</title>' + "".join(body) + "</svg>")


def hbar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series],
               fmt: Callable[[float], str] = lambda v: f"{v:g}") -> str:
    """Horizontal bars, one group per label, one bar per series, the value written at the bar's end."""
    values = [v for _, _, vs in series for v in vs if v]
    top = max(values, default=0) or 1
    plot = WIDTH - LABEL - 70
    group = len(series) * BAR + GAP
    legend = 22 if len(series) > 1 else 0
    height = legend + len(labels) * group + GAP
    body: list[str] = []
    for i, (name, colour, _) in enumerate(series if len(series) > 1 else ()):
        x = LABEL + i * 150
        body.append(f'<rect x="{x}" y="5" width="10" height="10" fill="{colour}"/>'
                    f'<text x="{x + 15}" y="14" font-size="12">{escape(name)}</text>')
    for row, label in enumerate(labels):
        y0 = legend + row * group
        body.append(f'<text x="{LABEL - 8}" y="{y0 + len(series) * BAR / 2 + 4}" font-size="12" text-anchor="end">'
                    f'{escape(label)}</text>')
        for i, (_, colour, vs) in enumerate(series):
            value = vs[row] or 0
            length = max(1, round(plot * value / top)) if value else 0
            y = y0 + i * BAR
            if length:
                body.append(f'<rect x="{LABEL}" y="{y + 2}" width="{length}" height="{BAR - 4}" fill="{colour}"/>')
            body.append(f'<text x="{LABEL + length + 5}" y="{y + BAR - 5}" font-size="11">'
                        f'{escape(fmt(value) if vs[row] is not None else "-")}</text>')
    body.append(f'<line x1="{LABEL}" y1="{legend}" x2="{LABEL}" y2="{height - GAP / 2}" stroke="#444"/>')
    return _svg(chart_id, title, WIDTH, height, body)


def vbar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], colour: str,
               axis: str) -> str:
    """Vertical bars (a histogram), the count above each bar and the axis name below."""
    height, base, left = 220, 180, 40
    top = max(values, default=0) or 1
    slot = (WIDTH - left - 10) / max(1, len(labels))
    body = [f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#444"/>']
    for i, (label, value) in enumerate(zip(labels, values)):
        x = left + i * slot + slot * 0.15
        h = round((base - 20) * value / top) if value else 0
        if h:
            body.append(f'<rect x="{x:.0f}" y="{base - h}" width="{slot * 0.7:.0f}" height="{h}" fill="{colour}"/>')
        body.append(f'<text x="{x + slot * 0.35:.0f}" y="{base - h - 4}" font-size="11" text-anchor="middle">{value:g}</text>'
                    f'<text x="{x + slot * 0.35:.0f}" y="{base + 15}" font-size="12" text-anchor="middle">{escape(label)}</text>')
    body.append(f'<text x="{WIDTH / 2:.0f}" y="{height - 4}" font-size="12" text-anchor="middle">{escape(axis)}</text>')
    return _svg(chart_id, title, WIDTH, height, body)


def _figure(title: str, svg: str, note: str = "") -> str:
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}{note_html}</figure>'


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    if not rows:
        return f'<section><h3>{escape(caption)}</h3><p class="note">None in this period.</p></section>'
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{escape("-" if v is None else str(v))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<section><h3>{escape(caption)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>'


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a202c;
       margin: 24px auto; max-width: 1120px; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #cbd5e0; }
h3 { font-size: 1em; margin: 16px 0 6px; }
.meta, .note { color: #4a5568; font-size: 0.9em; margin: 4px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #cbd5e0; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 1.5em; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 12px 24px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #e2e8f0; border-radius: 6px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg text { fill: #1a202c; font-family: inherit; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { background: #f7fafc; } .num { text-align: right; font-variant-numeric: tabular-nums; } td.num { white-space: nowrap; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 0 24px; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  figure.chart, section, table, tr { break-inside: avoid; }
  .charts, .tables { grid-template-columns: 1fr 1fr; }
  h2 { break-after: avoid; }
}
"""


def render(data: dict[str, Any], generated_at: str) -> str:
    window, totals, top = data["window"], data["totals"], data["top_tier"]
    tiers = data["escalations_per_tier"]
    ack = data["time_to_acknowledge"]
    breaches = data["sla_breaches"]["by_severity"]
    repeats = data["repeats_before_ack"]
    rules = data["escalations_per_rule"][:12]
    charts = [
        _figure("Tickets escalated to each tier", hbar_chart(
            "chart-tiers", "Tickets escalated to each tier", [f"{t['tier']} {t['name']}" for t in tiers],
            [("tickets", CHART_COLOURS["tiers"], [t["tickets"] for t in tiers])])),
        _figure("Time to acknowledge, by tier", hbar_chart(
            "chart-acknowledge", "Time to acknowledge by tier (median and p90)",
            [f"{t['tier']} {t['name']}" for t in ack["by_tier"]],
            [("median", CHART_COLOURS["acknowledge"], [t["median_seconds"] for t in ack["by_tier"]]),
             ("p90", CHART_COLOURS["acknowledge_p90"], [t["p90_seconds"] for t in ack["by_tier"]])], fmt=duration),
            "From the moment an escalation began to the first #ack, once per ticket."),
        _figure("SLA breaches, by severity", hbar_chart(
            "chart-breaches", "SLA breaches by severity", [b["severity"] for b in breaches],
            [("first response", CHART_COLOURS["breaches"], [b["first_response_breached"] for b in breaches]),
             ("resolution", CHART_COLOURS["breaches_resolution"], [b["resolution_breached"] for b in breaches])]),
            "Counted in each severity's working hours; time waiting on the customer left out."),
        _figure("Reminders before an acknowledgement", vbar_chart(
            "chart-repeats", "Reminders sent before the #ack", [str(h["repeats"]) for h in repeats["histogram"]],
            [h["tickets"] for h in repeats["histogram"]], CHART_COLOURS["repeats"], "reminders before #ack")),
        _figure("Escalations per rule", hbar_chart(
            "chart-rules", "Tickets each rule escalated", [r["rule"] for r in rules],
            [("tickets", CHART_COLOURS["rules"], [r["tickets"] for r in rules])])),
    ]
    cards = [("tickets opened", totals["tickets"]), ("escalated", totals["escalated"]),
             ("acknowledged", totals["acknowledged"]), ("resolved", totals["resolved"]),
             (f"reached tier {top['level']}", totals["reached_top_tier"]),
             ("unanswered to the end", totals.get("ladder_exhausted", 0)),
             ("first-response breaches", data["sla_breaches"]["total"]["first_response"]),
             ("resolution breaches", data["sla_breaches"]["total"]["resolution"])]
    tables = [
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
                           b["first_response_breached"], duration(b["resolution_target_seconds"]),
                           b["resolution_breached"]] for b in breaches], (1, 2, 3, 4, 5)))
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
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Escalation report {escape(when(window['since']))} to {escape(when(window['until']))}</title>
<style>{STYLE}</style></head>
<body>
<h1>Escalation report</h1>
<p class="meta">Tickets opened {escape(when(window['since']))} to {escape(when(window['until']))} ({drills}).
Generated {escape(generated_at)} by escalate.</p>
<div class="cards">{''.join(f'<div class="card"><b>{v}</b>{escape(k)}</div>' for k, v in cards)}</div>
<h2>Charts</h2>
<p class="note">{escape(repeat_line)}</p>
<div class="charts">{''.join(charts)}</div>
<h2>Details</h2>
<div class="tables">{''.join(tables)}</div>
{top_table}
</body>
</html>
"""
