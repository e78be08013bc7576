"""The servers a benchmark compares, each its own process on 127.0.0.1.

- ``convserve``: ``python -m service`` with dynamic batching (the default);
- ``nobatch``: the same with batching off (max batch 1, no queue delay);
- ``workers2``: ``--workers 2`` (two HTTP processes in front of one engine process);
- ``plain``: a plain FastAPI endpoint running the same ONNX session per request (``plain_server.py``);
- ``plain_torch``: the same endpoint running the PyTorch network eagerly (same architecture; the
  bench builds it with random weights - the speed of a forward pass does not depend on them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from service.launch import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("convserve", "nobatch", "workers2", "plain", "plain_torch")


def _pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree, MiB."""
    total = 0
    for p in _pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Server:
    """One server of ``kind`` for the models in ``repo`` (``model_dir``: the one model plain servers run)."""

    def __init__(self, kind: str, repo: Path, model_dir: Path | None = None, extra_env: dict | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind, self.port = kind, free_port()
        env = {"PYTHONPATH": str(ROOT)} | (extra_env or {})
        if kind.startswith("plain"):
            backend = "torch" if kind == "plain_torch" else "ort"
            cmd = [sys.executable, str(ROOT / "bench" / "plain_server.py"), str(model_dir), str(self.port), backend]
        else:
            cmd = [sys.executable, "-m", "service", "--models", str(repo), "--port", str(self.port)]
            env |= {"CONVSERVE_LOG_LEVEL": "warning", "CONVSERVE_MAX_QUEUE_LENGTH": "4096"}
            if kind == "nobatch":
                env |= {"CONVSERVE_MAX_BATCH_SIZE": "1", "CONVSERVE_MAX_QUEUE_DELAY_MS": "0"}
            if kind == "workers2":
                cmd += ["--workers", "2"]
        self.server = ServerProcess(cmd, self.port, ROOT, env)
        self.url = self.server.url

    def rss_mb(self) -> float:
        return rss_mb(self.server.proc.pid)

    def stop(self) -> None:
        self.server.stop(timeout_s=10)
