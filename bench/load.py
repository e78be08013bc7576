"""Load from ``wrk`` (a separate process): requests/s and the latency percentiles of one run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ms(s: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if m is None:
        raise ValueError(f"cannot read wrk's latency {s!r}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def wrk(url: str, body: Path, ctype: str, clients: int, seconds: float, header: str = "") -> dict:
    """POST ``body`` to ``url`` from ``clients`` connections for ``seconds``; rps, p50/p90/p99 ms, non-2xx."""
    env = os.environ | {"BENCH_BODY": str(body), "BENCH_CTYPE": ctype, "BENCH_HEADER": header}
    threads = str(min(2, clients))
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "--latency"]
    cmd += ["-s", str(ROOT / "bench" / "post.lua"), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    """wrk's report (run with ``--latency``) -> rps, requests, p50/p90/p99 ms, non-2xx, socket errors."""
    if "Latency Distribution" not in out:  # e.g. no request completed
        raise RuntimeError(f"wrk gave no latency distribution:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    dist = out[out.index("Latency Distribution") :]
    pct = {p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", dist, re.M).group(1)) for p in (50, 90, 99)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": total,
        "p50_ms": pct[50],
        "p90_ms": pct[90],
        "p99_ms": pct[99],
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }
