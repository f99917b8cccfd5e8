"""The Conversion dashboard: one controller holding the state, the widgets and the Bokeh sources.

``DashboardState`` is the model (traitlets, validated); :class:`ConversionDashboard` builds the
widgets, links them to the state and refreshes the views in place on every change. It never calls
``display()`` itself: a notebook shows ``dashboard.widget`` (or the dashboard object).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import available_timezones

import ipywidgets as w
import pandas as pd
import traitlets
from bokeh.io import output_notebook
from bokeh.models.layouts import LayoutDOM
from bokeh.protocol import Protocol
from bokeh.resources import Resources
from jupyter_bokeh import BokehModel

from convlib.charts import (
    MAX_SERIES,
    METRICS,
    build_insight_views,
    build_views,
    series_frames,
    update_insight_views,
    update_views,
)
from convlib.contract import WINDOWS, ContractError, parse_breakdown, parse_granularity
from convlib.countries import country_code, country_label
from convlib.fragments import headline_html
from convlib.periods import PRESETS, parse_tz, resolve_preset
from convlib.source import Source

__all__ = [
    "BatchedBokehModel",
    "ConversionDashboard",
    "DashboardState",
    "dashboard_choices",
    "load_bokeh",
]

log = logging.getLogger(__name__)
NO_CAMPAIGN = "(no campaign)"
COMMON_ZONES = ("UTC", "Europe/Amsterdam", "Europe/London", "Europe/Berlin", "Europe/Paris",
                "Europe/Madrid", "Europe/Rome", "Europe/Brussels", "America/New_York",
                "Asia/Kolkata", "Asia/Singapore")  # fmt: skip


def load_bokeh() -> None:
    """Load BokehJS inline into the page, so charts draw with no network (CDN) at all."""
    output_notebook(
        Resources(mode="inline", components=["bokeh", "bokeh-tables"]), hide_banner=True
    )


class BatchedBokehModel(BokehModel):
    """A ``BokehModel`` that sends the changes of one update as a single patch message.

    ``jupyter_bokeh`` sends one message per changed property; a dashboard update changes some
    thirty data sources at once, and the per-message cost then dominates the refresh.
    """

    def __init__(self, model: LayoutDOM, **kwargs: Any) -> None:
        self._pending: list[Any] | None = None
        super().__init__(model, **kwargs)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect document changes made inside the block; send them as one message."""
        self._pending = []
        try:
            yield
        finally:
            events, self._pending = self._pending, None
            if events:
                self._send_events(events)

    def _document_patched(self, event: Any) -> None:
        if event.setter is self:
            return
        if self._pending is not None:
            self._pending.append(event)
            return
        self._send_events([event])

    def _send_events(self, events: list[Any]) -> None:
        message = Protocol().create("PATCH-DOC", events)
        self.send({"msg": "patch", "payload": message.header_json})
        self.send({"msg": "patch", "payload": message.metadata_json})
        self.send({"msg": "patch", "payload": message.content_json})
        for buffer in message.buffers:
            self.send({"msg": "patch", "payload": json.dumps(buffer.ref)})
            self.send({"msg": "patch"}, [buffer.to_bytes()])


class DashboardState(traitlets.HasTraits):
    """What the user has chosen; every change is validated, then observed by the controller."""

    preset = traitlets.Unicode("last-90-days")
    start = traitlets.Instance(dt.date, allow_none=True)
    end = traitlets.Instance(dt.date, allow_none=True)
    channel = traitlets.List(traitlets.Unicode())
    country = traitlets.List(traitlets.Unicode())
    campaign = traitlets.List(traitlets.Unicode())
    breakdown = traitlets.Unicode("channel")
    granularity = traitlets.Unicode("week")
    metric = traitlets.Unicode("rate")
    window = traitlets.Unicode("7d")
    tz = traitlets.Unicode("UTC")
    view = traitlets.Unicode("chart")

    @traitlets.validate("preset")
    def _valid_preset(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in (*PRESETS, "custom"):
            raise traitlets.TraitError(f"unknown period preset {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("breakdown")
    def _valid_breakdown(self, proposal: dict[str, Any]) -> str:
        return _contract(lambda: parse_breakdown(proposal["value"]) or "none")

    @traitlets.validate("granularity")
    def _valid_granularity(self, proposal: dict[str, Any]) -> str:
        return _contract(lambda: parse_granularity(proposal["value"]).value)

    @traitlets.validate("metric")
    def _valid_metric(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in METRICS:
            raise traitlets.TraitError(f"unknown metric {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("window")
    def _valid_window(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in WINDOWS:
            raise traitlets.TraitError(f"unknown window {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("tz")
    def _valid_tz(self, proposal: dict[str, Any]) -> str:
        return _contract(lambda: parse_tz(proposal["value"]).key)

    @traitlets.validate("view")
    def _valid_view(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in ("chart", "table"):
            raise traitlets.TraitError(f"unknown view {proposal['value']!r}")
        return proposal["value"]


def _contract(parse: Callable[[], str]) -> str:
    try:
        return parse()
    except ContractError as exc:
        raise traitlets.TraitError(str(exc)) from None


QUERY_TRAITS = ("start", "end", "channel", "country", "campaign", "window", "tz")
SERIES_TRAITS = ("breakdown", "granularity")
VIEW_TRAITS = ("metric", "view")


class ConversionDashboard:
    """Widgets, state and Bokeh views for one opened source."""

    def __init__(self, source: Source, **choices: Any) -> None:
        self.source = source
        self.state = DashboardState()
        self.timings_ms: list[float] = []  # kernel time of each refresh, for the benchmark
        self._results: OrderedDict[tuple, Any] = OrderedDict()
        self.table_model: BatchedBokehModel | None = None
        self._insight_context: tuple[str, dict[str, list[str]]] = ("campaign", {})
        self._syncing = False
        self.views = build_views()
        self.insight_views = build_insight_views()
        self._build_widgets()
        self._apply_choices(choices)
        self.state.observe(self._on_state, names=[*QUERY_TRAITS, *SERIES_TRAITS, *VIEW_TRAITS])
        self.state.observe(self._on_preset, names="preset")
        self.refresh()
        # Wrapped only now: BokehModel serializes the figures when created, and changes made
        # before the page draws them would be lost. Later changes are sent as patches.
        self.chart_model = BatchedBokehModel(self.views.layout)
        self._ensure_table_model()
        self.chart_box.children = (self.chart_model, self.w_note)
        self.run_insights()

    # -- construction ---------------------------------------------------------------------------
    def _apply_choices(self, choices: dict[str, Any]) -> None:
        preset = choices.pop("preset", None)
        start, end = choices.pop("start", None), choices.pop("end", None)
        with self.state.hold_trait_notifications():
            for name, value in choices.items():
                if value is not None:
                    setattr(self.state, name, value)
            if start or end:
                span = self.source.data_range(self.state.tz)
                self.state.preset = "custom"
                self.state.start = _date(start) or (span[0] if span else None)
                self.state.end = _date(end) or (span[1] if span else None)
            else:
                self.state.preset = preset or self.state.preset
                self._resolve_preset()
        self._state_to_widgets()

    def _build_widgets(self) -> None:
        source = self.source
        self.w_preset = w.Dropdown(
            options=[(label, key) for key, label in PRESETS.items()] + [("Custom dates", "custom")],
            description="Period", layout=w.Layout(width="230px"),
        )  # fmt: skip
        self.w_start = w.DatePicker(description="from", layout=w.Layout(width="200px"))
        self.w_end = w.DatePicker(description="to", layout=w.Layout(width="200px"))
        wide = w.Layout(width="760px")
        self.w_channel = w.TagsInput(
            allowed_tags=source.dimension_values("channel"), layout=wide,
            placeholder="all channels: type to search",
        )  # fmt: skip
        self.w_country = w.TagsInput(
            allowed_tags=[country_label(c) for c in source.dimension_values("country")],
            layout=wide, placeholder="all countries: type a name or code",
        )  # fmt: skip
        self.w_campaign = w.TagsInput(
            allowed_tags=[v or NO_CAMPAIGN for v in source.dimension_values("campaign")],
            layout=wide, placeholder="all campaigns: type to search",
        )  # fmt: skip
        self.w_breakdown = w.ToggleButtons(
            options=[("None", "none"), ("Channel", "channel"), ("Country", "country"),
                     ("Campaign", "campaign")],
            description="Breakdown", style={"button_width": "84px"},
        )  # fmt: skip
        self.w_granularity = w.ToggleButtons(
            options=[("Day", "day"), ("Week", "week"), ("Month", "month")],
            description="Per", style={"button_width": "64px"},
        )  # fmt: skip
        self.w_metric = w.ToggleButtons(
            options=[(label, key) for key, label in METRICS.items()], description="Metric",
            style={"button_width": "190px"},
        )  # fmt: skip
        self.w_window = w.Dropdown(
            options=list(WINDOWS), description="Window", layout=w.Layout(width="160px")
        )
        self.w_tz = w.Combobox(
            options=[*COMMON_ZONES, *sorted(available_timezones() - set(COMMON_ZONES))],
            ensure_option=True, continuous_update=False, description="Time zone",
            layout=w.Layout(width="300px"),
        )  # fmt: skip
        self.w_view = w.ToggleButtons(
            options=[("Chart", "chart"), ("Table", "table")], style={"button_width": "70px"}
        )
        self.w_notice = w.HTML(_notice())
        self.w_status = w.HTML("", layout=w.Layout(min_height="24px"))
        self.w_headline = w.HTML("")
        self.w_note = w.HTML("")
        self.w_nodata = w.HTML("", layout=w.Layout(display="none"))
        self.w_download = w.HTML("")
        self.w_footer = w.HTML("")
        self.w_insight_series = w.Dropdown(
            options=[("by campaign", "campaign"), ("by channel", "channel"),
                     ("by country", "country")],
            layout=w.Layout(width="150px"),
        )  # fmt: skip
        self.w_insight_run = w.Button(
            description="Analyse this selection", icon="search", button_style="info",
            layout=w.Layout(width="210px"),
        )  # fmt: skip
        self.w_insight_run.on_click(lambda _: self.run_insights())
        self.w_insight_list = w.VBox([])
        self.insights_box = w.VBox(
            [
                w.HTML("<h3 style='margin:8px 0 4px'>Insights</h3><div style='font-size:12px;"
                       "color:#555'>Significant changes in daily rates, under-performers against"
                       " their channel and country benchmark, and the movement against the "
                       "previous period. Click a finding to focus the chart on it.</div>"),
                w.HBox([self.w_insight_run, self.w_insight_series]),
                self.w_insight_list,
            ],
            layout=w.Layout(border="1px solid #ddd", padding="6px 10px", margin="10px 0"),
        )  # fmt: skip
        self.chart_box = w.VBox([self.w_note])
        self.table_box = w.VBox([self.w_download], layout=w.Layout(display="none"))
        filters = w.VBox([
            _labelled("Channel", self.w_channel),
            _labelled("Country", self.w_country),
            _labelled("Campaign", self.w_campaign),
        ])  # fmt: skip
        controls = w.VBox([
            w.HBox([self.w_preset, self.w_start, self.w_end, self.w_window, self.w_tz]),
            filters,
            w.HBox([self.w_breakdown, self.w_granularity]),
            w.HBox([self.w_metric, self.w_view]),
        ], layout=w.Layout(padding="4px 0 8px 0"))  # fmt: skip
        self.widget = w.VBox(
            [self.w_notice, controls, self.w_status, self.w_headline, self.w_nodata,
             self.chart_box, self.table_box, self.insights_box, self.w_footer],
            layout=w.Layout(max_width="1240px"),
        )  # fmt: skip
        self.widget.add_class("convlib-dashboard")
        self._wire()

    def _wire(self) -> None:
        bindings: list[tuple[w.Widget, str, Callable, Callable]] = [
            (self.w_preset, "preset", _same, _same),
            (self.w_start, "start", _same, _same),
            (self.w_end, "end", _same, _same),
            (self.w_channel, "channel", list, list),
            (self.w_country, "country", _codes, _labels),
            (self.w_campaign, "campaign", _campaigns, _campaign_tags),
            (self.w_breakdown, "breakdown", _same, _same),
            (self.w_granularity, "granularity", _same, _same),
            (self.w_metric, "metric", _same, _same),
            (self.w_window, "window", _same, _same),
            (self.w_tz, "tz", _same, _same),
            (self.w_view, "view", _same, _same),
        ]
        self._to_widget = {trait: (widget, out) for widget, trait, _, out in bindings}
        for widget, trait, into, _ in bindings:
            widget.observe(self._widget_handler(trait, into), names="value")

    def _widget_handler(self, trait: str, into: Callable) -> Callable[[dict], None]:
        def handler(change: dict) -> None:
            if self._syncing:
                return
            try:
                if trait in ("start", "end") and self.state.preset != "custom":
                    self.state.preset = "custom"
                setattr(self.state, trait, into(change["new"]))
            except traitlets.TraitError as exc:
                self._show_error(str(exc))

        return handler

    def _state_to_widgets(self) -> None:
        """Show the state in the widgets without triggering their handlers."""
        self._syncing = True
        try:
            with self.widget.hold_sync():
                for trait, (widget, out) in self._to_widget.items():
                    value = out(getattr(self.state, trait))
                    if widget.value != value:
                        widget.value = value
        finally:
            self._syncing = False

    # -- reacting to changes -------------------------------------------------------------------
    def _on_preset(self, change: dict) -> None:
        if change["new"] != "custom":
            self._resolve_preset()
            self._state_to_widgets()
            return
        # Custom dates come from the date pickers themselves: only the preset menu follows.
        self._syncing = True
        try:
            self.w_preset.value = "custom"
        finally:
            self._syncing = False

    def _resolve_preset(self) -> None:
        span = self.source.data_range(self.state.tz)
        if span is None or self.state.preset == "custom":
            return
        start, end = resolve_preset(self.state.preset, span[1], span[0])
        with self.state.hold_trait_notifications():
            self.state.start, self.state.end = max(start, span[0]), end

    def _on_state(self, change: dict) -> None:
        if self._syncing:
            return
        self.refresh()  # a view change re-renders from remembered results, with no query

    # -- computing and showing -------------------------------------------------------------------
    def refresh(self) -> None:
        """Recompute what the state asks for and update every view in place."""
        began = time.perf_counter()
        self._set_busy(True)
        try:
            self._render()
            self.w_status.value = ""
        except ContractError as exc:
            self._show_error(str(exc))
        except Exception as exc:  # shown in the page: in Voilà a server log is invisible
            log.exception("refresh failed")
            self._show_error(f"Something went wrong: {type(exc).__name__}: {exc}")
        finally:
            self._set_busy(False)
            self.timings_ms.append((time.perf_counter() - began) * 1000)

    def _render(self) -> None:
        s = self.state
        if s.start is None or s.end is None:
            raise ContractError("the source has no delivered message to show")
        if s.end < s.start:
            raise ContractError(f"end {s.end} is before start {s.start}")
        frame, labels, folded = self._series_frame()
        self.table_box.layout.display = "none" if s.view != "table" or frame.empty else None

        self.chart_box.layout.display = "none" if s.view != "chart" or frame.empty else None
        self.w_nodata.layout.display = None if frame.empty else "none"
        self.w_nodata.value = _no_data_message(s) if frame.empty else ""
        self.w_headline.value = self._headline()  # remembered: free when only the view changed
        self.w_footer.value = self._footer()
        if frame.empty:
            self.current_table = pd.DataFrame()
            return
        breakdown = None if s.breakdown == "none" else s.breakdown
        order = list(labels)
        series = series_frames(frame, breakdown, order, labels)
        with self._batched():
            table = update_views(self.views, series, s.metric, s.granularity, s.start, s.end)
        self.current_table = table
        self.w_download.value = _download_link(table, self._file_stem())
        self.w_note.value = _chart_note(frame, breakdown, folded, self.source, s)
        self._ensure_table_model()

    def _ensure_table_model(self) -> None:
        """Wrap the table when it is first shown (after its data is in: see the constructor),
        which keeps the first page load light."""
        if self.state.view == "table" and self.table_model is None and hasattr(self, "chart_model"):
            self.table_model = BatchedBokehModel(self.views.table)
            self.table_box.children = (self.w_download, self.table_model)

    @contextlib.contextmanager
    def _batched(self) -> Iterator[None]:
        """Send the chart's and the table's changes as one message each (once displayed)."""
        models = [m for m in (getattr(self, "chart_model", None), self.table_model) if m]
        with contextlib.ExitStack() as stack:
            for model in models:
                stack.enter_context(model.batch())
            yield

    def _remembered(self, key: tuple, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """A small memory of query results, so toggling back and forth is instant."""
        if key not in self._results:
            self._results[key] = compute()
            if len(self._results) > 64:
                self._results.popitem(last=False)
        self._results.move_to_end(key)
        return self._results[key]

    def _query(self, **kwargs: Any) -> pd.DataFrame:
        """``Source.metrics``, remembered."""
        key = ("metrics", *sorted((k, repr(v)) for k, v in kwargs.items()))
        return self._remembered(key, lambda: self.source.metrics(**kwargs))

    def _common(self) -> dict[str, Any]:
        s = self.state
        filters = {d: list(getattr(s, d)) for d in ("channel", "country", "campaign")}
        return {
            "window": s.window,
            "tz": s.tz,
            "filters": {k: v for k, v in filters.items() if v},
        }

    def _series_frame(self) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
        """The metric frame for the chart, its series labels by value, and the folded values."""
        s = self.state
        breakdown = None if s.breakdown == "none" else s.breakdown
        common = self._common()
        frame = self._query(
            start=s.start, end=s.end, breakdown=breakdown, granularity=s.granularity, **common
        )
        if not breakdown or frame.empty:
            return frame, {"": "All messages"}, []
        volume = frame.groupby(breakdown)["delivered"].sum().sort_values(ascending=False)
        values = list(volume.index)
        shown, folded = values, []
        if len(values) > MAX_SERIES:
            shown, folded = values[: MAX_SERIES - 1], values[MAX_SERIES - 1 :]
        labels = {v: _value_label(breakdown, v) for v in shown}
        if folded:
            filters = {**common["filters"], breakdown: folded}
            other = self._query(
                start=s.start, end=s.end, breakdown=None, granularity=s.granularity,
                window=s.window, tz=s.tz, filters=filters,
            )  # fmt: skip
            other = other.assign(**{breakdown: "\x00other"})
            labels["\x00other"] = f"Other ({len(folded)} {breakdown}s)"
            frame = pd.concat([frame[frame[breakdown].isin(shown)], other], ignore_index=True)
        return frame, labels, folded

    def _headline(self) -> str:
        s = self.state
        common = self._common()
        key = ("summary", s.start, s.end, repr(common))
        both = self._remembered(key, lambda: self.source.summary(s.start, s.end, **common))
        current = both[both["period"] == s.start]
        previous = both[both["period"] != s.start]
        if current.empty:
            return ""
        return headline_html(current.iloc[0], None if previous.empty else previous.iloc[0],
                             s.start, s.end)  # fmt: skip

    def _footer(self) -> str:
        s = self.state
        quality = self.source.quality(s.window)
        as_of = self.source.as_of(s.tz)
        return _footer_html(quality, as_of, s.window, s.tz)

    def _file_stem(self) -> str:
        s = self.state
        return f"conversion_{s.start}_{s.end}_{s.breakdown}_{s.granularity}"

    def _set_busy(self, busy: bool) -> None:
        if busy:
            self.w_status.value = (
                '<span class="convlib-busy" style="color:#555">&#9203; Updating…</span>'
            )

    def _show_error(self, message: str) -> None:
        self.w_status.value = (
            '<div class="convlib-error" style="color:#b00020;font-weight:600">'
            f"{html.escape(message)}</div>"
        )

    # -- insights -------------------------------------------------------------------------------
    def run_insights(self) -> None:
        """Find changes, under-performers and the period movement for the current selection."""
        from convlib.insights import insights, sentences

        s = self.state
        self.w_insight_run.disabled = True
        self.w_insight_list.children = (w.HTML("&#9203; Analysing…"),)
        try:
            common = self._common()
            found = insights(
                self.source, s.start, s.end, breakdown=self.w_insight_series.value,
                filters=common["filters"], window=s.window, tz=s.tz,
            )  # fmt: skip
            self.last_insights = found
            model = getattr(self, "insight_model", None)
            with model.batch() if model else contextlib.nullcontext():
                update_insight_views(self.insight_views, found)
            self._insight_context = (self.w_insight_series.value, common["filters"])
            lines = sentences(found)
            focus = [self._focus_change(c) for c in found["changes"][:8]]
            focus += [self._focus_series(u["series"]) for u in found["underperformers"][:8]]
            rows = []
            for i, line in enumerate(lines):
                action = focus[i] if i < len(focus) else None
                rows.append(_finding_row(line, action))
            if not rows:
                rows = [w.HTML("No significant finding in this selection.")]
            scope = ", ".join(f"{k} {', '.join(v)}" for k, v in common["filters"].items())
            caption = (
                f"<div style='font-size:12px;color:#555'>For {s.start} – {s.end}, "
                f"{scope or 'all messages'}, window {s.window}, by {self._insight_context[0]}. "
                "Change the selection and analyse again to update.</div>"
            )
            self.w_insight_list.children = (w.HTML(caption), *rows)
        except ContractError as exc:
            self.w_insight_list.children = (w.HTML(html.escape(str(exc))),)
        except Exception as exc:
            log.exception("insights failed")
            self.w_insight_list.children = (w.HTML(f"Insights failed: {html.escape(str(exc))}"),)
        finally:
            self.w_insight_run.disabled = False

    def _focus_change(self, change: dict[str, Any]) -> Callable[[], None]:
        day = dt.date.fromisoformat(change["date"])

        def focus() -> None:
            self.focus(change["series"], day - dt.timedelta(days=21), day + dt.timedelta(days=10))

        return focus

    def _focus_series(self, value: str) -> Callable[[], None]:
        return lambda: self.focus(value, self.state.start, self.state.end)

    def focus(self, value: str, start: dt.date, end: dt.date) -> None:
        """Show one series of the insights' dimension, daily, around a period, with the filters
        the insights were computed with."""
        dimension, filters = self._insight_context
        span = self.source.data_range(self.state.tz)
        if span:
            start, end = max(start, span[0]), min(end, span[1])
        self._syncing = True  # one refresh for the whole change, not one per trait
        try:
            self.state.preset = "custom"
            self.state.start, self.state.end = start, end
            for name in ("channel", "country", "campaign"):
                setattr(self.state, name, list(filters.get(name, [])))
            setattr(self.state, dimension, [value])
            self.state.breakdown = dimension
            self.state.granularity = "day"
            self.state.view = "chart"
        finally:
            self._syncing = False
        self._state_to_widgets()
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# -- small pure helpers ----------------------------------------------------------------------------
def _same(value: Any) -> Any:
    return value


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _codes(labels: list[str]) -> list[str]:
    return [country_code(label) for label in labels]


def _labels(codes: list[str]) -> list[str]:
    return [country_label(code) for code in codes]


def _campaigns(tags: list[str]) -> list[str]:
    return ["" if tag == NO_CAMPAIGN else tag for tag in tags]


def _campaign_tags(values: list[str]) -> list[str]:
    return [value or NO_CAMPAIGN for value in values]


def _value_label(breakdown: str, value: str) -> str:
    if breakdown == "country":
        return country_label(value)
    if breakdown == "campaign" and value == "":
        return NO_CAMPAIGN
    return value


def _finding_row(line: str, action: Callable[[], None] | None) -> w.HBox:
    text = w.HTML(f"<span class='convlib-finding'>{html.escape(line)}</span>")
    if action is None:
        return w.HBox([text])
    button = w.Button(description="Focus", layout=w.Layout(width="70px"), tooltip="focus chart")
    button.on_click(lambda _: action())
    return w.HBox([button, text])


def _labelled(title: str, widget: w.Widget) -> w.HBox:
    return w.HBox([w.HTML(f"<b>{title}</b>", layout=w.Layout(width="90px")), widget])


def _notice() -> str:
    return (
        '<div style="background:#fff4e5;border-left:4px solid #e69f00;padding:6px 10px;'
        'margin-bottom:6px"><b>Beta</b> · Conversion dashboard. Numbers follow the convlib data '
        "contract: rates with 95% intervals, provisional periods marked, undelivered and "
        "untracked sends excluded and counted below.</div>"
    )


def _no_data_message(state: DashboardState) -> str:
    return (
        '<div class="convlib-nodata" style="padding:24px;border:1px dashed #999;color:#333">'
        "<b>No data for this selection.</b> No tracked delivery matches these filters in "
        f"{state.start} – {state.end}. Conversion tracking may not be enabled for these sends "
        "(Voice, for example, is sent with tracking off), or nothing was delivered: "
        "this is not a 0% conversion rate.</div>"
    )


def _chart_note(
    frame: pd.DataFrame,
    breakdown: str | None,
    folded: list[str],
    source: Source,
    state: DashboardState,
) -> str:
    notes = []
    if frame["provisional"].any():
        notes.append(
            "Hollow markers and dashed lines: <b>provisional</b> periods, whose "
            f"{state.window} window had not closed by the data's as-of time; they may still rise."
        )
    if folded:
        notes.append(
            f"Showing the {MAX_SERIES - 1} largest {breakdown}s by delivered volume; "
            f"{len(folded)} smaller ones are folded into <i>Other</i>."
        )
    notes.append("Shaded bands: 95% Wilson intervals. Bars: delivered volume per period.")
    return '<div style="font-size:12px;color:#555">' + "<br>".join(notes) + "</div>"


def _footer_html(quality: dict[str, Any], as_of: dt.datetime | None, window: str, tz: str) -> str:
    m, c = quality["messages"], quality["conversions"]
    excluded_m = m["not_delivered"] + m["tracking_off"] + m["duplicate_message_id"]
    excluded_c = c["total"] - c["counted"]
    stamp = as_of.strftime("%Y-%m-%d %H:%M %Z") if as_of else "–"
    return (
        '<div class="convlib-footer" style="font-size:12px;color:#555;border-top:1px solid #ddd;'
        'margin-top:10px;padding-top:6px">'
        f"Data as of <b>{stamp}</b> · window <b>{window}</b> · time zone <b>{tz}</b><br>"
        f"Excluded messages: {excluded_m:,} of {m['total']:,} "
        f"({m['not_delivered']:,} not delivered, {m['tracking_off']:,} tracking off, "
        f"{m['duplicate_message_id']:,} duplicate ids). "
        f"Conversions not counted: {excluded_c:,} of {c['total']:,} "
        f"({c['unknown_message']:,} unknown message, {c['message_not_in_scope']:,} message not "
        f"in scope, {c['before_delivery']:,} before delivery, {c['after_window']:,} after the "
        f"window, {c['repeat']:,} repeats).</div>"
    )


def _download_link(table: pd.DataFrame, stem: str) -> str:
    payload = base64.b64encode(table.to_csv(index=False).encode()).decode()
    return (
        f'<a class="convlib-download" download="{stem}.csv" '
        f'href="data:text/csv;base64,{payload}" style="font-size:13px">'
        "&#11015; Download this table as CSV</a>"
    )


def dashboard_choices(
    source: str | None = None,
    period: str = "last-90-days",
    start: str | None = None,
    end: str | None = None,
    tz: str = "UTC",
    window: str = "7d",
    breakdown: str = "channel",
    granularity: str = "week",
    metric: str = "rate",
    source_tz: str | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """Validate the dashboard notebook's parameters; returns (source, controller choices).

    Raises a one-line ContractError on a bad value. An empty ``source`` means the environment's
    ``CONVLIB_SOURCE`` (set by ``convlib dashboard --source``) or the bundled sample.
    """
    import os

    from convlib.contract import parse_window
    from convlib.periods import parse_date

    parse_tz(tz)
    parse_tz(source_tz)
    parse_window(window)
    parse_granularity(granularity)
    parse_breakdown(breakdown)
    if metric not in METRICS:
        raise ContractError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if period not in (*PRESETS, "custom"):
        raise ContractError(f"unknown period {period!r}: use one of {', '.join(PRESETS)}")
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first and last and last < first:
        raise ContractError(f"end {last} is before start {first}")
    choices: dict[str, Any] = {
        "preset": period, "start": first, "end": last, "tz": tz, "window": window,
        "breakdown": breakdown or "none", "granularity": granularity, "metric": metric,
    }  # fmt: skip
    return source or os.environ.get("CONVLIB_SOURCE") or None, choices
