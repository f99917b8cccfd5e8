"""Country names for people: "United Kingdom (GB)", from the ISO 3166 database in pycountry."""

from __future__ import annotations

from functools import cache

import pycountry

__all__ = ["country_code", "country_label"]


@cache
def country_label(code: str) -> str:
    """``"NL"`` -> ``"Netherlands (NL)"``; an unknown code is shown as it is."""
    country = pycountry.countries.get(alpha_2=code.upper()) if len(code) == 2 else None
    if country is None:
        return code
    name = getattr(country, "common_name", None) or country.name
    return f"{name} ({country.alpha_2})"


def country_code(label: str) -> str:
    """The inverse of :func:`country_label`: ``"Netherlands (NL)"`` -> ``"NL"``."""
    text = label.strip()
    if text.endswith(")") and "(" in text:
        return text[text.rindex("(") + 1 : -1]
    return text
