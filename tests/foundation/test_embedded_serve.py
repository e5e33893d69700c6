"""`inspection-hub serve` on the embedded PostgreSQL: starts, keeps data, shares, refuses twins.

Slow (starts real processes and an embedded server); kept to one test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTION_HUB_")}
    env.update(
        INSPECTION_HUB_DATA_DIR=str(data_dir),
        INSPECTION_HUB_WORKERS_ENABLED="false",
        INSPECTION_HUB_SCHEDULER_ENABLED="false",
        INSPECTION_HUB_LOG_LEVEL="WARNING",
        PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


class Servers:
    """Starts `serve` processes and makes sure none (nor the embedded server) outlives the test."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = embedded_env(data_dir)
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, port: int) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inspection_hub.cli", "serve", "--port", str(port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inspection_hub.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def postmaster_pid(self) -> int | None:
        pidfile = self.data_dir / "pg" / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        pid = self.postmaster_pid()
        if pid is not None:  # the embedded server outlived its owners: fast shutdown by pid
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                return
            for _ in range(100):
                if self.postmaster_pid() is None:
                    break
                time.sleep(0.1)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path / "data")
    try:
        yield s
    finally:
        s.cleanup()


def wait_ready(proc: subprocess.Popen[str], base: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"serve exited with {proc.returncode}: {err[-2000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not become ready")


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def test_embedded_serve_persists_shares_and_refuses_a_twin(servers: Servers) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = servers.start(port)
    wait_ready(first, base)

    # token create against the same data directory while serve runs
    made = servers.cli("token", "create", "--role", "admin", "--name", "wang.admin")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ih_")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(base + "/readyz", timeout=5).status_code == 200  # still serving
    r = httpx.post(
        base + "/v1/agencies", json={"code": "SCJG", "name": "区市场监管局"}, headers=headers
    )
    assert r.status_code == 201, r.text

    # a second serve on the same data directory refuses clearly
    twin = servers.start(free_port())
    _out, err = twin.communicate(timeout=120)
    assert twin.returncode != 0
    assert "in use" in err
    assert httpx.get(base + "/readyz", timeout=5).status_code == 200

    # stop: the embedded PostgreSQL goes down with its last user
    assert stop(first) == 0
    for _ in range(100):
        if servers.postmaster_pid() is None:
            break
        time.sleep(0.1)
    assert servers.postmaster_pid() is None

    # start again: the data (and the generated pepper, so the token) are still there
    again = servers.start(port)
    wait_ready(again, base)
    r = httpx.get(base + "/v1/agencies", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == [{"code": "SCJG", "name": "区市场监管局"}]
    assert stop(again) == 0
