"""HTML fragments shared by the dashboard and the report (no data access, no widgets)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from convlib.formatting import format_duration, format_rate

__all__ = ["headline_html"]


def _change(current: float, previous: float | None, kind: str, better_when_higher: bool) -> str:
    if previous is None or previous != previous or current != current:
        return '<span style="color:#777">no data in the previous period</span>'
    if kind == "pp":
        delta = (current - previous) * 100
        text = f"{delta:+.2f} pp"
    else:
        if previous == 0:
            return '<span style="color:#777">–</span>'
        delta = (current / previous - 1) * 100
        text = f"{delta:+.1f}%"
    good = (delta > 0) == better_when_higher
    color = "#777" if abs(delta) < 1e-9 else ("#1a7f37" if good else "#b00020")
    arrow = "&#9650;" if delta > 0 else ("&#9660;" if delta < 0 else "")
    return f'<span style="color:{color}">{arrow} {text}</span>'


def headline_html(
    current: pd.Series, previous: pd.Series | None, start: dt.date, end: dt.date
) -> str:
    """Headline cards: rate with its interval, mean and median time, delivered, converted,
    each with its change against the previous period of equal length."""
    days = (end - start).days + 1

    def prev(column: str) -> float | None:
        return None if previous is None else float(previous[column])

    cards = [
        ("Conversion rate", format_rate(current["conversion_rate"]),
         f"95% CI {format_rate(current['rate_ci_low'])} – {format_rate(current['rate_ci_high'])}",
         _change(current["conversion_rate"], prev("conversion_rate"), "pp", True)),
        ("Mean conversion time", format_duration(current["conversion_time_mean_s"]), "",
         _change(current["conversion_time_mean_s"], prev("conversion_time_mean_s"), "%", False)),
        ("Median conversion time", format_duration(current["conversion_time_median_s"]), "",
         _change(current["conversion_time_median_s"], prev("conversion_time_median_s"), "%",
                 False)),
        ("Delivered", f"{int(current['delivered']):,}", "tracked, in scope",
         _change(current["delivered"], prev("delivered"), "%", True)),
        ("Converted", f"{int(current['converted']):,}", "",
         _change(current["converted"], prev("converted"), "%", True)),
    ]  # fmt: skip
    provisional = (
        ' · <span style="color:#b05d00">provisional: the window of the latest days is still '
        "open</span>"
        if bool(current["provisional"])
        else ""
    )
    html_cards = "".join(
        '<div class="convlib-card" style="flex:1;min-width:170px;border:1px solid #ddd;'
        'border-radius:6px;padding:8px 12px;background:#fafafa">'
        f'<div style="color:#555;font-size:12px">{title}</div>'
        f'<div class="convlib-value" style="font-size:24px;font-weight:600">{value}</div>'
        f'<div style="color:#777;font-size:11px">{sub}</div>'
        f'<div style="font-size:12px">{change}</div></div>'
        for title, value, sub, change in cards
    )
    return (
        f'<div style="font-size:12px;color:#555;margin:2px 0 4px">{start} – {end} ({days} days), '
        f"change against the previous {days} days{provisional}</div>"
        f'<div class="convlib-headline" style="display:flex;gap:8px;flex-wrap:wrap">'
        f"{html_cards}</div>"
    )
