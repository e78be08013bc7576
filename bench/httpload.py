"""A load generator from the standard library alone, for machines without ``wrk`` (the GPU test machine).

``processes`` x ``clients`` keep-alive HTTP/1.1 connections POST one body for ``seconds`` (closed loop:
each connection sends its next request when the last answer is in); the result has wrk's fields -
requests/s over the window, p50/p90/p99 latency, non-2xx answers and socket errors. One process drives
a few thousand small requests per second; use several for more.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from urllib.parse import urlsplit

import numpy as np


def request_bytes(url: str, body: bytes, ctype: str, header: str = "") -> tuple[str, int, bytes]:
    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    extra = f"{header}\r\n" if header else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return u.hostname or "127.0.0.1", u.port or 80, head.encode() + body


async def _connection(host: str, port: int, request: bytes, start: float, end: float, out: dict) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        out["errors"] += 1
        return
    try:
        while (t0 := time.perf_counter()) < end:
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            t1 = time.perf_counter()
            if t0 >= start and t1 <= end:  # only what ran inside the window counts
                out["latencies"].append(t1 - t0)
                out["non_2xx"] += not status[9:10] == b"2"
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        out["errors"] += 1
    finally:
        writer.close()


def _process(job: tuple) -> dict:
    host, port, request, clients, start, end = job

    async def run() -> dict:
        out = {"latencies": [], "non_2xx": 0, "errors": 0}
        await asyncio.gather(*(_connection(host, port, request, start, end, out) for _ in range(clients)))
        return out

    return asyncio.run(run())


def load(
    url: str,
    body: bytes,
    ctype: str,
    clients: int,
    seconds: float,
    processes: int = 1,
    header: str = "",
    warmup_s: float = 0.5,
) -> dict:
    """POST ``body`` to ``url`` from ``clients`` connections (spread over ``processes``) for ``seconds``
    after ``warmup_s``: rps, requests, p50/p90/p99 ms, non_2xx, socket_errors."""
    host, port, request = request_bytes(url, body, ctype, header)
    processes = max(1, min(processes, clients))
    # perf_counter is CLOCK_MONOTONIC on Linux, one clock for every process: one window for all
    start = time.perf_counter() + warmup_s + (3.0 if processes > 1 else 0.2)  # spawned processes start slowly
    end = start + seconds
    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    jobs = [(host, port, request, n, start, end) for n in per]
    if processes == 1:
        results = [_process(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.map(_process, jobs)
    lat = np.array([t for r in results for t in r["latencies"]]) * 1e3
    return {
        "rps": len(lat) / seconds,
        "requests": int(len(lat)),
        **{f"p{p}_ms": float(np.percentile(lat, p)) if len(lat) else None for p in (50, 90, 99)},
        "non_2xx": sum(r["non_2xx"] for r in results),
        "socket_errors": sum(r["errors"] for r in results),
    }
