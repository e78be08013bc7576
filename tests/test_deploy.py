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


def test_compose_has_gpu_reservation_restart_cpu_profile_and_read_only_models() -> None:
    import yaml

    for args, service in ((["config"], "convserve"), (["--profile", "cpu", "config"], "convserve-cpu")):
        r = subprocess.run(
            [_tool("docker-compose"), "-f", "docker-compose.yml", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        svc = yaml.safe_load(r.stdout)["services"][service]
        assert svc["restart"] == "unless-stopped" and "healthcheck" in svc
        assert any(v["target"] == "/app/models" and v.get("read_only") for v in svc["volumes"])
        assert int(svc["shm_size"]) >= 256 * 1024**2 or str(svc["shm_size"]).endswith(("gb", "g"))
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        assert (service == "convserve") == any("gpu" in d.get("capabilities", []) for d in devices)
    assert "RUNTIME" in r.stdout  # the CPU profile builds the CPU image


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2 and "USER 10001" in text and "HEALTHCHECK" in text
    assert "torch" not in text.split("FROM ${PYTHON}\n")[-1]  # the final stage installs nothing more
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "runs"} <= set(ignored)


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    r = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "deploy/k8s/convserve.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for kind in ("deployment/convserve", "service/convserve", "horizontalpodautoscaler/convserve"):
        assert f"passed for resource {kind}" in r.stdout + r.stderr
