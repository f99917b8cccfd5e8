"""The ``convlib`` command: metrics, check, sample-data (and report, insights).

Bad input exits with code 2 and one line on stderr (``convlib: error: ...``), and writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from convlib.contract import BREAKDOWNS, DEFAULT_WINDOW, GRANULARITIES, WINDOWS, ContractError
from convlib.periods import PRESETS

__all__ = ["main", "write_atomic"]

EXIT_BAD_INPUT = 2


def write_atomic(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Write a file so that readers see the old file or the whole new one, never half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with tempfile.NamedTemporaryFile(
        mode, dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    ) as handle:
        handle.write(content)
        temporary = Path(handle.name)
    try:
        temporary.chmod(0o644)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _emit(text: str, output: str | None) -> None:
    if output and output != "-":
        write_atomic(output, text)
    else:
        sys.stdout.write(text)


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        help="folder with messages/conversions (Parquet or CSV), a DuckDB file or an Ibis URL "
        "(default: the bundled sample in data/sample)",
    )
    parser.add_argument(
        "--source-tz", help="time zone of timestamps that have no offset (default UTC)"
    )


def _add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", help="first local delivery date, YYYY-MM-DD (default: data)")
    parser.add_argument("--end", help="last local delivery date, YYYY-MM-DD (default: data)")
    parser.add_argument("--tz", default="UTC", help="report time zone, IANA name (default UTC)")
    parser.add_argument(
        "--window", default=DEFAULT_WINDOW, help=f"one of {', '.join(WINDOWS)} (default 7d)"
    )
    parser.add_argument("--granularity", default="day", help=f"one of {', '.join(GRANULARITIES)}")
    parser.add_argument("--breakdown", help=f"one of none, {', '.join(BREAKDOWNS)}")
    for dimension in BREAKDOWNS:
        parser.add_argument(
            f"--{dimension}",
            action="append",
            default=[],
            metavar="VALUE",
            help=f"keep only this {dimension} (repeatable)",
        )
    parser.add_argument("--as-of", help="time the data is complete up to (default: latest in it)")


def _filters(args: argparse.Namespace) -> dict[str, list[str]]:
    return {d: getattr(args, d) for d in BREAKDOWNS if getattr(args, d)}


def _cmd_metrics(args: argparse.Namespace) -> int:
    from convlib.formatting import to_csv, to_json, to_table
    from convlib.source import open_source

    renderers: dict[str, Callable] = {"csv": to_csv, "json": to_json, "table": to_table}
    if args.format not in renderers:
        raise ContractError(f"unknown format {args.format!r}: use csv, json or table")
    # One question: answer it from the raw tables rather than building the interactive cache.
    source = open_source(args.source, source_tz=args.source_tz, cache=False)
    frame = source.metrics(
        args.start,
        args.end,
        breakdown=args.breakdown,
        granularity=args.granularity,
        window=args.window,
        filters=_filters(args),
        tz=args.tz,
        as_of=args.as_of,
    )
    _emit(renderers[args.format](frame), args.output)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from convlib.contract import parse_window
    from convlib.source import open_source

    parse_window(args.window)  # reject a bad window before reading anything
    if args.format not in ("json", "table"):
        raise ContractError(f"unknown format {args.format!r}: use json or table")
    source = open_source(args.source, source_tz=args.source_tz, cache=False)
    quality = source.quality(args.window)
    if args.format == "json":
        text = json.dumps(quality, indent=2) + "\n"
    else:
        lines = [f"window {quality['window']}"]
        for table in ("messages", "conversions"):
            lines.append(f"{table}:")
            lines += [f"  {key:<22}{value:>12,}" for key, value in quality[table].items()]
        text = "\n".join(lines) + "\n"
    _emit(text, args.output)
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from convlib.sample import SampleSpec, generate_sample, write_source

    if args.format not in ("parquet", "csv", "duckdb"):
        raise ContractError(f"unknown format {args.format!r}: use parquet, csv or duckdb")
    messages, conversions = generate_sample(SampleSpec(messages=args.messages, seed=args.seed))
    target = args.output
    if args.format == "duckdb" and not target.endswith((".duckdb", ".db")):
        target = str(Path(target) / "sample.duckdb")
    path = write_source(messages, conversions, target, args.format)
    print(f"wrote {len(messages):,} messages and {len(conversions):,} conversions to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``convlib`` command."""
    parser = argparse.ArgumentParser(
        prog="convlib", description="Conversion analytics for messaging campaigns."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    metrics = commands.add_parser("metrics", help="conversion metrics per period (contract CSV)")
    _add_source_options(metrics)
    _add_selection_options(metrics)
    metrics.add_argument("--format", default="csv", help="csv (default), json or table")
    metrics.add_argument("-o", "--output", help="write to this file instead of stdout")
    metrics.set_defaults(run=_cmd_metrics)

    check = commands.add_parser("check", help="data-quality counts: what is not counted and why")
    _add_source_options(check)
    check.add_argument("--window", default=DEFAULT_WINDOW, help="measurement window (default 7d)")
    check.add_argument("--format", default="json", help="json (default) or table")
    check.add_argument("-o", "--output", help="write to this file instead of stdout")
    check.set_defaults(run=_cmd_check)

    sample = commands.add_parser("sample-data", help="write the deterministic sample source")
    sample.add_argument("--messages", type=int, default=1_000_000, help="about how many messages")
    sample.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sample.add_argument("--format", default="parquet", help="parquet (default), csv or duckdb")
    sample.add_argument(
        "-o", "--output", default="data/sample", help="folder (default data/sample)"
    )
    sample.set_defaults(run=_cmd_sample_data)

    for add in (_add_dashboard, _add_report, _add_insights):
        add(commands)
    return parser


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A command that imports its module only when it runs, so `convlib metrics` does not
    pay for Bokeh, SciPy, Papermill or Voilà at start-up."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run


def _add_dashboard(commands: argparse._SubParsersAction) -> None:
    """Add ``convlib dashboard`` to the command line."""
    parser = commands.add_parser("dashboard", help="serve the Conversion dashboard with Voilà")
    parser.add_argument("--source", help="source to open (default: the bundled sample)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    parser.set_defaults(run=_lazy("convlib.serve", "_cmd_dashboard"))


def _add_report(commands: argparse._SubParsersAction) -> None:
    """Add ``convlib report`` to the command line."""
    parser = commands.add_parser("report", help="run the report notebook, write one HTML file")
    parser.add_argument("--source", help="source (default: the bundled sample)")
    parser.add_argument("--source-tz", help="time zone of timestamps without an offset")
    parser.add_argument(
        "--period", default="last-month", help=f"one of {', '.join(PRESETS)} (default last-month)"
    )
    parser.add_argument("--start", help="first local date (with --end, instead of --period)")
    parser.add_argument("--end", help="last local date")
    parser.add_argument(
        "--anchor", default="data", help="resolve --period against the data's as-of (data) or today"
    )
    parser.add_argument("--tz", default="UTC", help="report time zone (default UTC)")
    parser.add_argument("--window", default="7d", help="measurement window (default 7d)")
    parser.add_argument("--breakdown", default="channel", help="none, channel, country, campaign")
    parser.add_argument("--granularity", default="day", help="day, week or month (default day)")
    for dimension in BREAKDOWNS:
        parser.add_argument(f"--{dimension}", action="append", default=[], metavar="VALUE")
    parser.add_argument("--benchmark", help="CSV of target rates (channel[, country|campaign])")
    parser.add_argument("-o", "--output", help="HTML path (default reports/<dated name>.html)")
    parser.set_defaults(run=_lazy("convlib.report", "_cmd_report"))


def _add_insights(commands: argparse._SubParsersAction) -> None:
    """Add ``convlib insights`` to the command line."""
    parser = commands.add_parser("insights", help="changes, under-performers, comparison")
    parser.add_argument("--source", help="source (default: the bundled sample)")
    parser.add_argument("--source-tz", help="time zone of timestamps without an offset")
    parser.add_argument("--start", required=True, help="first local date YYYY-MM-DD")
    parser.add_argument("--end", required=True, help="last local date YYYY-MM-DD")
    parser.add_argument("--tz", default="UTC", help="time zone (default UTC)")
    parser.add_argument("--window", default="7d", help="measurement window (default 7d)")
    parser.add_argument(
        "--breakdown", default="campaign", help="series: channel, country, campaign"
    )
    for dimension in BREAKDOWNS:
        parser.add_argument(f"--{dimension}", action="append", default=[], metavar="VALUE")
    parser.add_argument("--benchmark", help="CSV: channel[, country|campaign], conversion_rate")
    parser.add_argument("--format", default="json", help="json (default) or table")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.set_defaults(run=_lazy("convlib.insights", "_cmd_insights"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = args.run(args)
        except ContractError as exc:
            print(f"convlib: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        finally:
            from convlib.source import FilterWarning

            for warning in caught:
                if issubclass(warning.category, FilterWarning):
                    print(f"convlib: warning: {warning.message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
