"""A deterministic, realistic sample source: messages and conversions, January to June 2026.

The sample carries the three stories our users ask about, so the dashboard, the reports and the
insights can be shown on it (``docs/sample-data.md`` lists every planted effect):

* in NL in March 2026, WhatsApp Business converts at about twice the SMS rate;
* recipients of WhatsApp Business act in about 4 h in GB and about 11 h in FR (mean);
* the SMS campaign ``spring-sale`` in DE loses about 45% of its conversion rate from 18 April 2026
  while its daily volume holds;

plus Voice sent with conversion tracking off, and records that break the rules (conversions before
delivery, for unknown messages and repeated, late conversions, duplicated message ids).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from convlib.contract import ContractError

__all__ = ["SampleSpec", "generate_sample", "write_source"]

FIRST_DAY = dt.date(2026, 1, 1)
LAST_DAY = dt.date(2026, 6, 30)
EXPORTED_AT = pd.Timestamp(
    "2026-07-02 12:00:00", tz="UTC"
)  # conversions after it are not known yet

COUNTRIES = {  # share of volume, time zone, mean conversion time in hours
    "DE": (0.24, "Europe/Berlin", 7.0),
    "GB": (0.18, "Europe/London", 4.0),
    "FR": (0.17, "Europe/Paris", 11.0),
    "IT": (0.12, "Europe/Rome", 9.0),
    "ES": (0.12, "Europe/Madrid", 10.0),
    "NL": (0.10, "Europe/Amsterdam", 6.0),
    "BE": (0.07, "Europe/Brussels", 8.0),
}
CHANNELS = {  # share, delivery failure rate, base conversion rate, delay factor, monthly trend
    "SMS": (0.34, 0.04, 0.080, 1.0, 0.00),
    "WhatsApp Business": (0.25, 0.06, 0.140, 1.0, 0.04),
    "Email": (0.15, 0.03, 0.035, 2.0, -0.02),
    "RCS": (0.10, 0.10, 0.110, 1.1, 0.03),
    "Viber": (0.09, 0.08, 0.095, 1.2, 0.00),
    "Voice": (0.07, 0.15, 0.050, 1.5, 0.00),
}
COUNTRY_RATE = {"DE": 1.0, "GB": 1.1, "FR": 0.9, "IT": 0.95, "ES": 1.05, "NL": 1.0, "BE": 0.9}
# Campaigns by channel; the multiplier shapes the rate. Two under-perform on purpose.
CAMPAIGNS: dict[str, dict[str, float]] = {
    "SMS": {
        "new-year-deals": 1.0,
        "winter-clearance": 0.95,
        "order-updates": 1.1,
        "flash-friday": 0.55,
        "appointment-reminders": 1.05,
        "summer-preview": 1.0,
    },
    "WhatsApp Business": {
        "cart-reminder": 1.1,
        "welcome-series": 1.0,
        "back-in-stock": 1.05,
        "loyalty-points": 0.95,
        "easter-promo": 1.0,
        "delivery-updates": 1.0,
    },
    "Email": {
        "newsletter-weekly": 1.0,
        "product-launch": 1.1,
        "loyalty-winback": 0.5,
        "survey-invite": 0.9,
        "black-friday-recap": 1.0,
    },
    "RCS": {
        "rich-catalogue": 1.0,
        "spring-collection": 1.05,
        "store-events": 0.95,
        "vip-offers": 1.0,
    },
    "Viber": {"viber-deals": 1.0, "bonus-week": 0.95, "app-install": 1.05, "referral-boost": 1.0},
    "Voice": {"payment-reminders": 1.0, "service-calls": 1.0},
}
NO_CAMPAIGN_SHARE = 0.12
SPRING_SALE = {  # the planted drop
    "first": dt.date(2026, 4, 1),
    "last": dt.date(2026, 4, 28),
    "drop_from": dt.date(2026, 4, 18),
    "per_day": 700,
    "rate_before": 0.12,
    "rate_after": 0.066,
}
WEEKDAY_VOLUME = np.array([1.05, 1.1, 1.1, 1.05, 1.0, 0.6, 0.45])  # Monday .. Sunday
WEEKDAY_RATE = np.array([1.0, 1.02, 1.02, 1.0, 0.97, 0.92, 0.9])
US = 1_000_000


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: the number of messages (about) and the random seed."""

    messages: int = 1_000_000
    seed: int = 7


def generate_sample(spec: SampleSpec = SampleSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate (messages, conversions) as DataFrames with UTC timestamps (ms precision)."""
    if spec.messages < 1_000:
        raise ContractError(f"--messages {spec.messages} is too small: use at least 1000")
    rng = np.random.default_rng(spec.seed)
    spring = _spring_sale(rng, spec.messages)
    general = _general_messages(rng, spec.messages - len(spring["channel"]))
    columns = {k: np.concatenate([general[k], spring[k]]) for k in general}
    messages, conversions = _outcomes(rng, columns)
    messages, conversions = _rule_breakers(rng, messages, conversions)
    return _finish(messages, conversions)


def _spring_sale(rng: np.random.Generator, total: int) -> dict[str, np.ndarray]:
    """The planted campaign: steady daily volume in DE, rate falling from the 18th of April."""
    scale = total / 1_000_000
    days = pd.date_range(SPRING_SALE["first"], SPRING_SALE["last"], freq="D")
    per_day = rng.poisson(SPRING_SALE["per_day"] * scale, len(days))
    day = np.repeat(days.values.astype("datetime64[D]"), per_day)
    n = len(day)
    drop_from = np.datetime64(SPRING_SALE["drop_from"])
    rate = np.where(day >= drop_from, SPRING_SALE["rate_after"], SPRING_SALE["rate_before"])
    return {
        "day": day,
        "local_hour_us": _send_times(rng, n),
        "country": np.full(n, "DE", dtype=object),
        "channel": np.full(n, "SMS", dtype=object),
        "campaign": np.full(n, "spring-sale", dtype=object),
        "rate": rate,
    }


def _general_messages(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    days = pd.date_range(FIRST_DAY, LAST_DAY, freq="D")
    growth = np.linspace(0.9, 1.15, len(days))  # the business grows over the half year
    weights = WEEKDAY_VOLUME[days.weekday] * growth
    day = rng.choice(days.values.astype("datetime64[D]"), size=n, p=weights / weights.sum())
    country = _pick(rng, list(COUNTRIES), [v[0] for v in COUNTRIES.values()], n)
    channel = _pick(rng, list(CHANNELS), [v[0] for v in CHANNELS.values()], n)
    campaign = np.full(n, "", dtype=object)
    rate = np.empty(n)
    month_index = (day.astype("datetime64[M]") - np.datetime64("2026-01", "M")).astype(int)
    weekday = (day.astype("datetime64[D]").astype(int) - 4) % 7  # 1970-01-01 was a Thursday
    for name, (_, _, base, _, trend) in CHANNELS.items():
        mask = channel == name
        names = list(CAMPAIGNS[name])
        chosen = rng.choice(len(names), size=mask.sum())
        multiplier = np.array([CAMPAIGNS[name][c] for c in names])[chosen]
        labels = np.array(names, dtype=object)[chosen]
        none = rng.random(mask.sum()) < NO_CAMPAIGN_SHARE
        campaign[mask] = np.where(none, "", labels)
        multiplier = np.where(none, 1.0, multiplier)
        rate[mask] = base * multiplier * (1 + trend * month_index[mask])
    rate *= np.array([COUNTRY_RATE[c] for c in country]) * WEEKDAY_RATE[weekday]
    return {
        "day": day,
        "local_hour_us": _send_times(rng, n),
        "country": country,
        "channel": channel,
        "campaign": campaign,
        "rate": rate,
    }


def _pick(rng: np.random.Generator, names: list[str], shares: list[float], n: int) -> np.ndarray:
    p = np.asarray(shares) / np.sum(shares)
    return np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=p)]


def _send_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Local time of day in microseconds: a morning and an evening peak, nothing at night."""
    morning = rng.normal(10.5, 1.3, n)
    evening = rng.normal(18.5, 1.5, n)
    hours = np.where(rng.random(n) < 0.6, morning, evening).clip(8.0, 21.5)
    return (hours * 3_600_000).astype(np.int64) * 1_000  # whole milliseconds


def _outcomes(rng: np.random.Generator, c: dict[str, np.ndarray]) -> tuple[dict, dict]:
    n = len(c["day"])
    local = c["day"].astype("datetime64[us]") + c["local_hour_us"].astype("timedelta64[us]")
    sent = np.empty(n, dtype=np.int64)
    for country, (_, zone, _) in COUNTRIES.items():
        mask = c["country"] == country
        stamps = pd.DatetimeIndex(local[mask]).tz_localize(zone, nonexistent="shift_forward")
        sent[mask] = stamps.tz_convert("UTC").as_unit("us").asi8
    failure = np.array([CHANNELS[ch][1] for ch in c["channel"]])
    delivered_ok = rng.random(n) >= failure
    lag = (rng.lognormal(np.log(3.0), 0.8, n) * 1000).astype(np.int64) * 1000  # ms, median 3 s
    delivered = np.where(delivered_ok, sent + lag, -1)
    tracking = c["channel"] != "Voice"
    converts = delivered_ok & tracking & (rng.random(n) < c["rate"])
    mean_h = np.array([COUNTRIES[x][2] for x in c["country"]])
    mean_h *= np.array([CHANNELS[ch][3] for ch in c["channel"]])
    delay = (rng.exponential(mean_h * 3600.0, n) * 1000).astype(np.int64) * 1000
    index = np.flatnonzero(converts)
    # Late responders: some messages are answered only after the default 7-day window.
    late = np.flatnonzero(delivered_ok & tracking & ~converts & (rng.random(n) < 0.015))
    late_delay = (rng.uniform(7.5, 25.0, len(late)) * 86_400_000).astype(np.int64) * 1000
    messages = {
        "index": np.arange(n),
        "sent": sent,
        "delivered": delivered,
        "channel": c["channel"],
        "country": c["country"],
        "campaign": c["campaign"],
        "tracking": tracking,
    }
    conversions = {
        "index": np.concatenate([index, late]),
        "converted": np.concatenate(
            [delivered[index] + delay[index], delivered[late] + late_delay]
        ),
    }
    return messages, conversions


def _rule_breakers(rng: np.random.Generator, m: dict, c: dict) -> tuple[dict, dict]:
    """Add the records that break the rules, each kind at a small, realistic rate."""
    n = len(m["index"])
    converted_idx = c["index"]
    # Repeats: 6% of converting recipients act again later (a second purchase, another click).
    again = rng.choice(converted_idx, size=int(0.06 * len(converted_idx)), replace=False)
    again_at = m["delivered"][again] + (rng.uniform(0.2, 48, len(again)) * 3.6e9).astype(np.int64)
    # Before delivery: clock skew between systems, up to 2 minutes early.
    delivered_idx = np.flatnonzero(m["delivered"] >= 0)
    skewed = rng.choice(delivered_idx, size=max(1, n // 1000), replace=False)
    skewed_at = m["delivered"][skewed] - rng.integers(1_000, 120_000, len(skewed)) * 1000
    # Unknown ids: conversions reported for messages the export does not hold.
    unknown = np.full(max(1, n // 2000), -1)
    unknown_at = rng.choice(m["sent"], size=len(unknown)) + 3_600 * US
    # Conversions reported for undelivered messages.
    undelivered = np.flatnonzero(m["delivered"] < 0)
    ghost = rng.choice(undelivered, size=min(len(undelivered), max(1, n // 5000)), replace=False)
    ghost_at = m["sent"][ghost] + 7_200 * US
    conversions = {
        "index": np.concatenate([c["index"], again, skewed, unknown, ghost]),
        "converted": np.concatenate([c["converted"], again_at, skewed_at, unknown_at, ghost_at]),
    }
    # Duplicate ids: 0.1% of messages were exported twice, the copy sent a little later.
    dup = rng.choice(n, size=max(1, n // 1000), replace=False)
    shift = rng.integers(60, 3_600, len(dup)) * US
    messages = {k: np.concatenate([v, v[dup]]) for k, v in m.items()}
    messages["sent"][n:] += shift
    messages["delivered"][n:] = np.where(
        messages["delivered"][n:] >= 0, messages["delivered"][n:] + shift, -1
    )
    return messages, conversions


def _finish(m: dict, c: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = pd.Series(m["index"]).map("m{:08d}".format).to_numpy(dtype=object)
    unknown_ids = np.array([f"x{i:08d}" for i in range(int((c["index"] < 0).sum()))], dtype=object)
    conversion_ids = np.empty(len(c["index"]), dtype=object)
    known = c["index"] >= 0
    conversion_ids[known] = pd.Series(c["index"][known]).map("m{:08d}".format).to_numpy()
    conversion_ids[~known] = unknown_ids
    exported = EXPORTED_AT.value // 1000
    keep = c["converted"] <= exported
    messages = pd.DataFrame(
        {
            "message_id": ids,
            "sent_at": _timestamps(m["sent"]),
            "delivered_at": _timestamps(np.where(m["delivered"] >= 0, m["delivered"], -1)),
            "channel": m["channel"],
            "country": m["country"],
            "campaign": m["campaign"],
            "conversion_tracking": m["tracking"],
        }
    )
    messages["campaign"] = messages["campaign"].replace("", None)
    messages = messages.sort_values("sent_at", kind="stable").reset_index(drop=True)
    conversions = pd.DataFrame(
        {"message_id": conversion_ids[keep], "converted_at": _timestamps(c["converted"][keep])}
    )
    conversions = conversions.sort_values("converted_at", kind="stable").reset_index(drop=True)
    return messages, conversions


def _timestamps(us: np.ndarray) -> pd.Series:
    stamps = pd.to_datetime(np.where(us >= 0, us, 0), unit="us", utc=True).as_unit("ms")
    return pd.Series(stamps).where(us >= 0)


def write_source(
    messages: pd.DataFrame, conversions: pd.DataFrame, folder: str | os.PathLike[str], fmt: str
) -> Path:
    """Write a source as ``parquet``, ``csv`` (ISO 8601 text) or ``duckdb``; atomically."""
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "duckdb":
        return _write_duckdb(messages, conversions, target)
    target.mkdir(parents=True, exist_ok=True)
    for name, frame in (("messages", messages), ("conversions", conversions)):
        path = target / f"{name}.{fmt}"
        with tempfile.NamedTemporaryFile(dir=target, suffix=".part", delete=False) as handle:
            temporary = Path(handle.name)
        try:
            if fmt == "parquet":
                table = pa.Table.from_pandas(frame, preserve_index=False)
                pq.write_table(table, temporary, row_group_size=131_072, compression="zstd")
            elif fmt == "csv":
                text = frame.copy()
                for column in text.columns:
                    if isinstance(text[column].dtype, pd.DatetimeTZDtype):
                        text[column] = text[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                text.to_csv(temporary, index=False)
            else:
                raise ContractError(f"unknown format {fmt!r}: use parquet, csv or duckdb")
            temporary.chmod(0o644)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
    return target


def _write_duckdb(messages: pd.DataFrame, conversions: pd.DataFrame, path: Path) -> Path:
    import duckdb

    temporary = path.with_name(path.name + ".part")
    temporary.unlink(missing_ok=True)
    try:
        with duckdb.connect(str(temporary)) as con:
            for name, frame in (("messages", messages), ("conversions", conversions)):
                con.register("frame", frame)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
                con.unregister("frame")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
