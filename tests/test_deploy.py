"""The deployment files are valid: hadolint on the Dockerfile, `docker-compose config` on the compose file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: it comes with the [dev] extra"
    return found


def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_file_is_valid_and_serves_on_loopback() -> None:
    r = subprocess.run(
        [_tool("docker-compose"), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "host_ip: 127.0.0.1" in r.stdout and "target: 8000" in r.stdout and "healthcheck" in r.stdout
