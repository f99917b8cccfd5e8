"""Serving the dashboard with Voilà: `convlib dashboard` (what `make dashboard` runs)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from convlib.contract import ContractError

__all__ = ["NOTEBOOKS", "voila_command", "voila_environment"]

PACKAGE = Path(__file__).resolve().parent
NOTEBOOKS = PACKAGE.parent / "notebooks"
DASHBOARD = "conversion_dashboard.ipynb"


def voila_environment(source: str | None = None) -> dict[str, str]:
    """The environment Voilà needs: our template on the Jupyter path, the source to open."""
    env = dict(os.environ)
    extra = str(PACKAGE / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (extra, env.get("JUPYTER_PATH")) if p)
    if source:
        env["CONVLIB_SOURCE"] = str(Path(source).resolve()) if "://" not in source else source
    return env


def voila_command(host: str, port: int) -> list[str]:
    """The Voilà command line, to run from ``notebooks/`` (where voila.json lives)."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    return [
        voila, DASHBOARD, "--no-browser", f"--Voila.ip={host}", f"--port={port}",
        "--Voila.root_dir=.", "--theme=light",
    ]  # fmt: skip


def _cmd_dashboard(args: argparse.Namespace) -> int:
    if args.source and "://" not in args.source and not Path(args.source).exists():
        raise ContractError(f"{args.source}: no such folder or file")
    env = voila_environment(args.source)
    command = voila_command(args.host, args.port)
    print(f"serving the Conversion dashboard on http://{args.host}:{args.port}", flush=True)
    os.chdir(NOTEBOOKS)
    os.execvpe(command[0], command, env)
    return 0  # not reached
