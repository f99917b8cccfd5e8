"""environment.yml and pyproject.toml pin the same versions."""

from __future__ import annotations

import re
import tomllib

from .conftest import ROOT


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + project["optional-dependencies"]["test"]
    listed = {
        line.strip().removeprefix("- ")
        for line in (ROOT / "environment.yml").read_text().splitlines()
        if re.match(r"\s+- [A-Za-z]", line)
    }
    missing = [pin for pin in pins if pin not in listed]
    assert missing == []
