"""The metric logic as pure Ibis expressions, with no engine-specific SQL.

The key observation: a message's *first qualifying* conversion for any window W is its earliest
conversion at or after delivery, provided that conversion is within W. So one per-message fact,
``delay_us`` (earliest non-negative conversion delay, or null), answers every window:
converted(W) = ``delay_us <= W``, and its conversion time is ``delay_us``. The facts table is built
once per opened source and every question after that is a scan of it.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from convlib.periods import SLOT_US

__all__ = [
    "conversion_quality",
    "first_delays",
    "in_scope_facts",
    "kept_messages",
    "message_quality",
    "rollup",
]


def kept_messages(messages: ir.Table) -> ir.Table:
    """One row per message_id: the first by sent_at (ties broken by the other columns, so the
    choice does not depend on file order)."""
    duplicated = (
        messages.group_by("message_id")
        .aggregate(rows=messages.count())
        .filter(lambda t: t.rows > 1)
        .select("message_id")
    )
    # Duplicates are rare: rank only the rows of duplicated ids instead of sorting every row.
    singles = messages.anti_join(duplicated, "message_id")
    candidates = messages.semi_join(duplicated, "message_id")
    order = [
        candidates.sent_us,
        candidates.delivered_us.asc(nulls_first=False),
        candidates.channel,
        candidates.country,
        candidates.campaign,
        candidates.tracking.desc(),
    ]
    rank = ibis.row_number().over(group_by=candidates.message_id, order_by=order)
    firsts = candidates.mutate(rank=rank).filter(lambda t: t["rank"] == 0).drop("rank")
    return singles.union(firsts)


def first_delays(in_scope: ir.Table, conversions: ir.Table) -> ir.Table:
    """For each in-scope message with a conversion at or after delivery: the earliest delay."""
    joined = conversions.join(in_scope.select("message_id", "delivered_us"), "message_id")
    delays = joined.select("message_id", delay_us=joined.converted_us - joined.delivered_us)
    return (
        delays.filter(delays.delay_us >= 0)
        .group_by("message_id")
        .aggregate(delay_us=lambda t: t.delay_us.min())
    )


def in_scope_facts(messages: ir.Table, conversions: ir.Table) -> ir.Table:
    """Per-message facts of in-scope messages: slot, channel, country, campaign, delay_us."""
    kept = kept_messages(messages)
    in_scope = kept.filter(kept.delivered_us.notnull() & kept.tracking)
    delays = first_delays(in_scope, conversions)
    joined = in_scope.left_join(delays, "message_id")
    return joined.select(
        slot=joined.delivered_us // SLOT_US,
        channel=joined.channel,
        country=joined.country,
        campaign=joined.campaign,
        delay_us=joined.delay_us,
    )


def rollup(
    facts: ir.Table,
    slots: ir.Table,
    slot_lo: int,
    slot_hi: int,
    window_us: int,
    breakdown: str | None,
    filters: dict[str, list[str]],
) -> ir.Table:
    """Delivered, converted, mean and median delay per (period[, breakdown]) for one window."""
    selected = facts.filter(facts.slot >= slot_lo, facts.slot < slot_hi)
    for dimension, values in filters.items():
        selected = selected.filter(selected[dimension].isin(values))
    placed = selected.join(slots, "slot")
    keys = ["period"] + ([breakdown] if breakdown else [])
    converted = placed.delay_us <= window_us
    return placed.group_by(keys).aggregate(
        delivered=placed.count(),
        converted=converted.fill_null(False).sum(),
        delay_mean_us=placed.delay_us.mean(where=converted),
        delay_median_us=placed.delay_us.median(where=converted),
    )


def message_quality(messages: ir.Table) -> ir.Table:
    """Counts of message rows by fate: in scope, not delivered, tracking off, duplicate id."""
    kept = kept_messages(messages)
    delivered = kept.delivered_us.notnull()
    return kept.aggregate(
        kept=kept.count(),
        in_scope=(delivered & kept.tracking).sum(),
        not_delivered=(~delivered).sum(),
        tracking_off=(delivered & ~kept.tracking).sum(),
    ).cross_join(messages.aggregate(total=messages.count()))


def conversion_quality(messages: ir.Table, conversions: ir.Table, window_us: int) -> ir.Table:
    """Counts of conversion rows by the first contract category that applies (see docs)."""
    kept = kept_messages(messages).select("message_id", "delivered_us", "tracking")
    kept = kept.mutate(known=ibis.literal(True))
    joined = conversions.left_join(kept, "message_id")
    in_scope = joined.delivered_us.notnull() & joined.tracking.fill_null(False)
    delay = joined.converted_us - joined.delivered_us
    unknown = joined.known.isnull()
    return joined.aggregate(
        total=joined.count(),
        unknown_message=unknown.sum(),
        message_not_in_scope=(~unknown & ~in_scope).sum(),
        before_delivery=(in_scope & (delay < 0)).sum(),
        after_window=(in_scope & (delay > window_us)).sum(),
        qualifying=(in_scope & (delay >= 0) & (delay <= window_us)).sum(),
    )
