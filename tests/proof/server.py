"""The app under uvicorn in a subprocess on the test database, its log captured to a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import TEST_PEPPER

SRC = str(Path(__file__).resolve().parents[2] / "src")
SESSION_SECRET = "test-session-secret-" + "y" * 40


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a served app on the test database (production settings otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTION_HUB_")}
    env.update(
        INSPECTION_HUB_ENV="production",
        INSPECTION_HUB_DATABASE_URL=database_url,
        INSPECTION_HUB_DATA_DIR=str(data_dir),
        INSPECTION_HUB_TOKEN_PEPPER=TEST_PEPPER,
        INSPECTION_HUB_SESSION_SECRET=SESSION_SECRET,
        INSPECTION_HUB_ALLOW_PRIVATE_CALLBACK_URLS="true",
        INSPECTION_HUB_LOG_LEVEL="INFO",
        PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


@dataclass
class ServedApp:
    """A running `inspection-hub serve` and what it logged."""

    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path
    secrets: list[str] = field(default_factory=list)

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_serve(env: dict[str, str], log_path: Path, timeout: float = 60) -> ServedApp:
    """Start `inspection-hub serve` on a free port and wait until /readyz says 200."""
    port = free_port()
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspection_hub.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return ServedApp(proc, base, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("serve did not become ready: " + log_path.read_text())


def stop(app: ServedApp, sig: int = signal.SIGTERM) -> int:
    """Signal the process and wait for it; return its exit code."""
    if app.proc.poll() is None:
        app.proc.send_signal(sig)
        try:
            app.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.proc.kill()
            app.proc.wait()
    return int(app.proc.returncode)
