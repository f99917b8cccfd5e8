"""Helpers for browser tests: serve with Voilà, drive Debian's chromium with Playwright, and
record every page error and every request that would leave the machine."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
LOCAL = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "data:", "blob:", "about:",
         "file://")  # fmt: skip
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def chromium_or_skip() -> str:
    """The chromium binary; a missing one skips locally but fails in CI."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run should have installed it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def voila_dashboard(source: Path | None = None) -> Iterator[str]:
    """Serve the dashboard exactly as `make dashboard` does, on a free loopback port."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "convlib"), "dashboard", "--port", str(port)]
    if source is not None:
        command += ["--source", str(source)]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            # A static asset: answering it starts no kernel (every page GET would start one).
            _wait_ready(url + "voila/static/voila.js", process, log)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait_ready(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"voila exited: {log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("voila did not answer within 90 s")


@dataclass
class PageWatch:
    """Page errors, console errors and requests to other machines seen by one page."""

    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: self.errors.append(f"console: {message.text}")
            if message.type == "error" else None,
        )  # fmt: skip
        page.on(
            "request",
            lambda request: self.external.append(request.url)
            if not request.url.startswith(LOCAL) else None,
        )  # fmt: skip


@contextlib.contextmanager
def chromium_page(width: int = 1300, height: int = 1400) -> Iterator[tuple[object, PageWatch]]:
    """A fresh headless chromium page, watched."""
    from playwright.sync_api import sync_playwright

    binary = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=binary, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )  # fmt: skip
        try:
            page = context.new_page()
            watch = PageWatch()
            watch.attach(page)
            yield page, watch
        finally:
            context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (kept for people to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
