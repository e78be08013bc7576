"""Starting a server process and waiting until it is ready: one helper for the tests and the bench.

The server's output goes to a log file, never an unread pipe (a full pipe would stall it)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``cmd`` (which must listen on ``port``) started in ``cwd``; ready once ``/health/ready`` says 200."""

    def __init__(self, cmd: list[str], port: int, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 120):
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="convserve-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=os.environ | (env or {}), stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop(keep_log=True)
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop(keep_log=True)
        raise RuntimeError(f"server not ready within {timeout_s:.0f} s: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout_s: float = 20, keep_log: bool = False) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if not keep_log and os.path.exists(self.log.name):
            os.unlink(self.log.name)
        return self.proc.returncode
