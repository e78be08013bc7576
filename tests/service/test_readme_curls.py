"""Every curl in the README, run verbatim from the repository root against a live server (only the
port is changed from 8000); each must get a 2xx answer and write nothing into the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import running_server

ROOT = Path(__file__).resolve().parents[2]


def readme_curls() -> list[str]:
    """The curl commands of the README's sh blocks, continuation lines joined, trailing comments cut."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for cmd in re.sub(r"\\\n\s*", " ", block).splitlines():
            cmd = re.sub(r"\s+#[^'\"]*$", "", cmd.strip())  # a comment after the command (not in quotes)
            if cmd.startswith("curl "):
                commands.append(cmd)
    return commands


CURLS = readme_curls()


def test_the_readme_shows_curls_for_every_endpoint() -> None:
    for endpoint in ("/classify", "/segment", "/denoise", "/nowcast"):
        assert any(endpoint in c for c in CURLS), endpoint


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_server() as url:
        yield url


def _untracked() -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    return set(out.stdout.splitlines())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("cmd", CURLS, ids=[f"curl{i}" for i in range(len(CURLS))])
def test_readme_curl_runs_as_written(cmd: str, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    before = _untracked()
    line = cmd.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    # --fail-with-body: an HTTP error becomes a non-zero exit (the command itself is unchanged)
    script = 'curl() { command curl --fail-with-body -sS "$@"; }\n' + line
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert r.returncode == 0, f"{cmd}\n{r.stderr.decode()[-500:]}\n{r.stdout[-500:]!r}"
    assert r.stdout or " -o " in line, "no answer"
    assert _untracked() == before, "the command wrote into the repository"
