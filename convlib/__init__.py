"""convlib: conversion rate and time of messaging campaigns, as the data contract defines them."""

from __future__ import annotations

from convlib.contract import (
    BREAKDOWNS,
    DEFAULT_WINDOW,
    GRANULARITIES,
    WINDOWS,
    ContractError,
    Granularity,
    Window,
)
from convlib.metrics import wilson_interval
from convlib.source import FilterWarning, Source, open_source

__all__ = [
    "BREAKDOWNS",
    "DEFAULT_WINDOW",
    "GRANULARITIES",
    "WINDOWS",
    "ContractError",
    "FilterWarning",
    "Granularity",
    "Source",
    "Window",
    "open_source",
    "wilson_interval",
]
__version__ = "0.1.0"
