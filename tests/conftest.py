"""Shared helpers: write small sources from rows, in any of the supported formats."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from convlib.sample import write_source

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.UTC


def ts(text: str) -> dt.datetime:
    """An aware UTC datetime from ISO text (``Z`` allowed)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def frames(messages: list[dict], conversions: list[tuple[str, str]]) -> tuple[pd.DataFrame, ...]:
    """DataFrames with the contract's columns from compact rows (text timestamps, UTC)."""
    defaults = {
        "delivered_at": None,
        "channel": "SMS",
        "country": "NL",
        "campaign": None,
        "conversion_tracking": True,
    }
    rows = []
    for row in messages:
        full = {**defaults, **row}
        full["sent_at"] = ts(full["sent_at"])
        full["delivered_at"] = ts(full["delivered_at"]) if full["delivered_at"] else None
        rows.append(full)
    columns = [
        "message_id",
        "sent_at",
        "delivered_at",
        "channel",
        "country",
        "campaign",
        "conversion_tracking",
    ]
    m = pd.DataFrame(rows, columns=columns)
    for column in ("sent_at", "delivered_at"):
        m[column] = pd.to_datetime(m[column], utc=True).astype("datetime64[us, UTC]")
    c = pd.DataFrame(
        {
            "message_id": [mid for mid, _ in conversions],
            "converted_at": pd.to_datetime([ts(t) for _, t in conversions], utc=True),
        },
    )
    c["converted_at"] = c["converted_at"].astype("datetime64[us, UTC]")
    return m, c


@pytest.fixture
def make_source(tmp_path):
    """Write rows as a source and return its location (folder or DuckDB file)."""
    counter = iter(range(1_000_000))

    def make(messages, conversions, fmt: str = "parquet") -> Path:
        m, c = (
            frames(messages, conversions) if isinstance(messages, list) else (messages, conversions)
        )
        target = tmp_path / f"src{next(counter)}"
        if fmt == "duckdb":
            target = target.with_suffix(".duckdb")
        return write_source(m, c, target, fmt)

    return make


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled sample (made by `convlib sample-data` when absent, as `make` does)."""
    folder = ROOT / "data" / "sample"
    if not (folder / "messages.parquet").exists():
        subprocess.run(
            [sys.executable, "-m", "convlib.cli", "sample-data", "-o", str(folder)],
            check=True,
            cwd=ROOT,
        )
    return folder
