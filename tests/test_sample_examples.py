"""The bundled sample shows the seed's examples through `convlib metrics`, as users would run it."""

from __future__ import annotations

import csv
import io

import pytest

from convlib.cli import main


def metrics(capsys, sample_dir, *args):
    assert main(["metrics", "--source", str(sample_dir), *args]) == 0
    out, err = capsys.readouterr()
    return list(csv.DictReader(io.StringIO(out))), err


def test_whatsapp_converts_twice_sms_in_nl_march(capsys, sample_dir):
    rows, _ = metrics(
        capsys,
        sample_dir,
        "--country",
        "NL",
        "--start",
        "2026-03-01",
        "--end",
        "2026-03-31",
        "--granularity",
        "month",
        "--breakdown",
        "channel",
    )
    rate = {r["channel"]: float(r["conversion_rate"]) for r in rows}
    assert 1.8 <= rate["WhatsApp Business"] / rate["SMS"] <= 2.2


def test_whatsapp_conversion_time_gb_4h_fr_11h(capsys, sample_dir):
    rows, _ = metrics(
        capsys,
        sample_dir,
        "--channel",
        "WhatsApp Business",
        "--start",
        "2026-01-01",
        "--end",
        "2026-03-31",
        "--granularity",
        "month",
        "--breakdown",
        "country",
    )
    for country, hours in (("GB", 4.0), ("FR", 11.0)):
        delivered = sum(int(r["delivered"]) for r in rows if r["country"] == country)
        converted = [
            (int(r["converted"]), float(r["conversion_time_mean_s"]))
            for r in rows
            if r["country"] == country
        ]
        mean_h = sum(n * t for n, t in converted) / sum(n for n, _ in converted) / 3600
        assert delivered > 1000
        assert mean_h == pytest.approx(hours, rel=0.1), country


def test_spring_sale_drop_from_18_april_with_volume_held(capsys, sample_dir):
    rows, _ = metrics(
        capsys,
        sample_dir,
        "--channel",
        "SMS",
        "--country",
        "DE",
        "--campaign",
        "spring-sale",
        "--start",
        "2026-04-01",
        "--end",
        "2026-04-28",
    )
    by_day = {r["period"]: r for r in rows}
    assert len(by_day) == 28

    def rate(days):
        chosen = [by_day[d] for d in days]
        return sum(int(r["converted"]) for r in chosen) / sum(int(r["delivered"]) for r in chosen)

    def volume(days):
        return sum(int(by_day[d]["delivered"]) for d in days)

    before = [f"2026-04-{d:02d}" for d in range(1, 18)]
    after = [f"2026-04-{d:02d}" for d in range(18, 29)]
    assert rate(after) <= 0.7 * rate(before)
    # every day from the 18th is below the lowest rate of the week before
    week_before = [f"2026-04-{d:02d}" for d in range(11, 18)]
    assert max(rate([d]) for d in after) < min(rate([d]) for d in week_before)
    week_after = [f"2026-04-{d:02d}" for d in range(18, 25)]
    assert abs(volume(week_after) / volume(week_before) - 1) <= 0.10


def test_voice_has_no_rows_not_zero(capsys, sample_dir):
    rows, _ = metrics(capsys, sample_dir, "--channel", "Voice")
    assert rows == []
