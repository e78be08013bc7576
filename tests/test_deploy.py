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


def _build_stage() -> tuple[list[tuple[list[str], str]], list[str]]:
    """The Dockerfile's build stage: its COPY lines (sources, destination) and its pip install arguments."""
    import shlex

    lines = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1].splitlines()  # the first stage, after FROM
    copies, install = [], []
    for line in lines:
        words = shlex.split(line)
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copies.append((words[1:-1], words[-1]))
        if words[:1] == ["RUN"] and "pip" in " ".join(words) and "install" in words:
            install = words[words.index("install") + 1 :]
    assert copies and install, "the Dockerfile's build stage has no COPY or pip install line"
    return copies, install


def _replay(tmp: Path, runtime: str, *extra: str) -> tuple[Path, subprocess.CompletedProcess]:
    """Replay the build stage in a fresh venv: the COPY lines into a build folder, then the pip line."""
    src = tmp / "src"
    src.mkdir()
    copies, install = _build_stage()
    for sources, dest in copies:
        for s in sources:
            target = src / dest / Path(s).name if dest.endswith("/") or dest == "." else src / dest
            (shutil.copytree if (ROOT / s).is_dir() else shutil.copy)(ROOT / s, target)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    args = [a.replace("${RUNTIME}", runtime) for a in install]
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", *extra, *args], cwd=src, capture_output=True, text=True, timeout=900
    )
    return venv, r


def test_dockerfile_gpu_install_line_resolves(tmp_path) -> None:
    """The GPU image's install (onnxruntime-gpu with the CUDA / cuDNN wheels) resolves; --dry-run keeps
    the 1 GB of CUDA wheels out of the test."""
    _, r = _replay(tmp_path, "gpu", "--dry-run", "--ignore-installed")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "onnxruntime-gpu" in r.stdout and "nvidia-cudnn" in r.stdout and "torch" not in r.stdout.lower().split()


def test_dockerfile_cpu_install_line_installs_a_service_that_starts(tmp_path) -> None:
    """The CPU image's install, for real, in a fresh venv: no torch, and the image's command serves."""
    from service.launch import ServerProcess, free_port

    venv, r = _replay(tmp_path, "cpu")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    py = str(venv / "bin" / "python")
    listed = subprocess.run([py, "-m", "pip", "list"], capture_output=True, text=True, timeout=120).stdout
    assert "torch" not in listed.lower() and "onnxruntime " in listed.lower()
    port = free_port()
    cmd = [py, "-m", "service", "--models", str(ROOT / "models"), "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess(cmd, port, tmp_path, timeout_s=120)
    try:
        import httpx

        ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        server.stop()
