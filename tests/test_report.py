"""The scheduled report: Papermill run, self-contained HTML, numbers equal `convlib metrics`,
bad parameters exit 2 and write nothing, a failed run never replaces a good report."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

import convlib
from convlib.cli import main
from convlib.report import render_report, report_spec
from convlib.sample import SampleSpec, generate_sample, write_source

from .browser import chromium_or_skip, chromium_page, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    messages, conversions = generate_sample(SampleSpec(messages=20_000, seed=9))
    return write_source(messages, conversions, tmp_path_factory.mktemp("rep"), "parquet")


@pytest.fixture(scope="module")
def rendered(small_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "weekly.html"
    code = main(["report", "--source", str(small_source), "--period", "last-month",
                 "--breakdown", "country", "--country", "NL", "--country", "GB",
                 "--granularity", "week", "-o", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_report_files_written(rendered):
    assert rendered.exists() and rendered.with_suffix(".ipynb").exists()
    text = rendered.read_text()
    # self-contained: no script or stylesheet from another machine, no code cells
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", text)
    assert "report_spec(" not in text
    assert "Data as of" in text and "2026-06-01" in text


class TableParser(HTMLParser):
    """Rows of the first <table class="convlib-table">, with the standard library only."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = self.done = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and "convlib-table" in (dict(attrs).get("class") or "") and not self.done:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table" and self.inside:
            self.inside, self.done = False, True

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def test_report_table_matches_metrics(rendered, small_source):
    parser = TableParser()
    parser.feed(rendered.read_text())
    header, *rows = parser.rows
    shown = pd.DataFrame(rows, columns=header)
    expected = convlib.open_source(small_source).metrics(
        "2026-06-01", "2026-06-30", breakdown="country", granularity="week",
        filters={"country": ["NL", "GB"]},
    )  # fmt: skip
    assert len(shown) == len(expected)
    assert shown["Delivered"].str.replace(",", "").astype(int).sum() == expected["delivered"].sum()
    rates = sorted(shown["Conversion rate"])
    assert rates == sorted(f"{r * 100:.2f}%" for r in expected["conversion_rate"])


def test_report_opens_offline_in_chromium(rendered):
    chromium_or_skip()
    with chromium_page() as (page, watch):
        page.goto(rendered.as_uri())
        page.wait_for_selector("canvas", state="attached", timeout=30_000)
        page.wait_for_timeout(1000)
        screenshot(page, "report")
        requests = [u for u in watch.external if not u.startswith("file://")]
        assert requests == [], f"requests left the machine: {requests}"
        assert watch.errors == [], f"page errors: {watch.errors}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "fortnight"], "unknown period"),
        (["--window", "2d"], "unknown window"),
        (["--start", "2026-05-10", "--end", "2026-05-01"], "before start"),
        (["--start", "2026-05-10"], "give both"),
        (["--tz", "Mars/Base"], "unknown time zone"),
        (["--benchmark", "missing.csv"], "benchmark file not found"),
    ],
)
def test_bad_parameters_exit_2_and_write_nothing(capsys, small_source, tmp_path, args, message):
    out = tmp_path / "r.html"
    code = main(["report", "--source", str(small_source), "-o", str(out), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_failed_run_keeps_the_previous_report(small_source, tmp_path):
    good, _ = report_spec(source=str(small_source), period="last-month")
    out = tmp_path / "r.html"
    render_report(good, out)
    before = out.read_bytes()
    broken = dataclasses.replace(good, window="2d")  # fails inside the notebook
    with pytest.raises(RuntimeError, match="unknown window"):
        render_report(broken, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.ipynb"]
