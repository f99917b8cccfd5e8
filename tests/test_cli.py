"""The command line: contract CSV, formats, exit codes, errors on stderr, no half-written files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from convlib.cli import main

ROWS = [
    {
        "message_id": "a",
        "sent_at": "2026-03-10T10:00:00Z",
        "delivered_at": "2026-03-10T10:00:01Z",
        "channel": "SMS",
    },
    {
        "message_id": "b",
        "sent_at": "2026-03-10T10:00:00Z",
        "delivered_at": "2026-03-10T10:00:01Z",
        "channel": "WhatsApp Business",
    },
    {
        "message_id": "c",
        "sent_at": "2026-03-11T10:00:00Z",
        "delivered_at": "2026-03-11T10:00:01Z",
        "channel": "SMS",
    },
]
CONVERSIONS = [("a", "2026-03-10T11:00:01Z"), ("c", "2026-03-11T10:30:01.5Z")]
HEADER = (
    "period,channel,delivered,converted,conversion_rate,rate_ci_low,rate_ci_high,"
    "conversion_time_mean_s,conversion_time_median_s,provisional"
)


@pytest.fixture
def source(make_source):
    return str(make_source(ROWS, CONVERSIONS))


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_metrics_csv_is_the_contract(capsys, source):
    code, out, err = run(capsys, "metrics", "--source", source, "--breakdown", "channel")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["period"], r["channel"], r["delivered"], r["converted"]) for r in rows] == [
        ("2026-03-10", "SMS", "1", "1"),
        ("2026-03-10", "WhatsApp Business", "1", "0"),
        ("2026-03-11", "SMS", "1", "1"),
    ]
    # no conversion: empty times; provisional as true/false; full float precision
    assert rows[1]["conversion_time_mean_s"] == "" and rows[1]["conversion_rate"] == "0.0"
    assert rows[2]["conversion_time_mean_s"] == "1800.5"
    assert {r["provisional"] for r in rows} == {"true"}  # as_of is 11 March: windows open


def test_metrics_filters_and_as_of(capsys, source):
    code, out, _ = run(
        capsys,
        "metrics",
        "--source",
        source,
        "--channel",
        "SMS",
        "--channel",
        "RCS",
        "--as-of",
        "2026-04-01T00:00:00Z",
        "--granularity",
        "month",
    )
    assert code == 0
    fields = out.splitlines()[1].split(",")
    assert fields[:4] == ["2026-03-01", "2", "2", "1.0"]
    assert float(fields[4]) == pytest.approx(2 / (2 + 1.959963984540054**2), rel=1e-12)
    assert fields[5:] == ["1.0", "2700.25", "2700.25", "false"]


def test_json_and_table_formats(capsys, source):
    code, out, _ = run(capsys, "metrics", "--source", source, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["period"] == "2026-03-10" and rows[0]["conversion_time_mean_s"] == 3600.0
    code, out, _ = run(capsys, "metrics", "--source", source, "--format", "table")
    assert code == 0 and "50.00%" in out and "1.0 h" in out


def test_unknown_filter_value_warns_and_gives_no_rows(capsys, source):
    code, out, err = run(capsys, "metrics", "--source", source, "--channel", "Fax")
    assert code == 0
    assert out.strip() == HEADER.replace("channel,", "")
    assert "warning: channel 'Fax' matches no message" in err


def test_check_prints_contract_keys(capsys, source):
    code, out, _ = run(capsys, "check", "--source", source, "--window", "1h")
    assert code == 0
    quality = json.loads(out)
    assert quality["window"] == "1h"
    assert set(quality["conversions"]) == {
        "total",
        "counted",
        "unknown_message",
        "message_not_in_scope",
        "before_delivery",
        "after_window",
        "repeat",
    }
    assert set(quality["messages"]) == {
        "total",
        "in_scope",
        "not_delivered",
        "tracking_off",
        "duplicate_message_id",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "2w"], "unknown window '2w'"),
        (["--granularity", "hour"], "unknown granularity 'hour'"),
        (["--breakdown", "city"], "unknown breakdown 'city'"),
        (["--tz", "Moon/Base"], "unknown time zone 'Moon/Base'"),
        (["--start", "2026-03-10", "--end", "2026-03-01"], "end 2026-03-01 is before start"),
        (["--format", "xml"], "unknown format 'xml'"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, source, tmp_path, args, message):
    output = tmp_path / "out.csv"
    code, out, err = run(capsys, "metrics", "--source", source, "-o", str(output), *args)
    assert code == 2
    assert out == ""
    assert err.startswith("convlib: error: ") and message in err
    assert err.count("\n") == 1
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src0"]  # nothing half-written


def test_missing_source_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "check", "--source", str(tmp_path / "none"))
    assert code == 2 and "no such folder or file" in err


def test_output_file_written_whole(capsys, source, tmp_path):
    output = tmp_path / "reports" / "m.csv"
    code, out, _ = run(capsys, "metrics", "--source", source, "-o", str(output))
    assert code == 0 and out == ""
    assert output.read_text().startswith("period,delivered")
    assert [p.name for p in output.parent.iterdir()] == ["m.csv"]  # no temporary left behind


def test_console_script_no_traceback(tmp_path):
    # the installed entry point: exit code 2 and a single line, no traceback
    result = subprocess.run(
        [sys.executable, "-m", "convlib.cli", "metrics", "--source", str(tmp_path), "--tz", "X"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_sample_data_is_deterministic(tmp_path, capsys):
    for name in ("one", "two"):
        assert (
            main(
                [
                    "sample-data",
                    "--messages",
                    "5000",
                    "--seed",
                    "11",
                    "--format",
                    "csv",
                    "-o",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    capsys.readouterr()
    for table in ("messages.csv", "conversions.csv"):
        assert (tmp_path / "one" / table).read_bytes() == (tmp_path / "two" / table).read_bytes()
