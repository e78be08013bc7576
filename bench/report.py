"""The benchmark's table, the issue's targets as measured ratios, and plots (throughput and p50/p99
against concurrency) - all from one run's results."""

from __future__ import annotations

import json
import time
from pathlib import Path


def _cell(point: dict) -> str:
    if point["requests"] == 0:  # the queue is longer than wrk's window: nothing measured
        return f"{'no reply':>12s} {'in window':>15s}"
    return f"{point['rps']:12.1f} {point['p50_ms']:7.1f}/{point['p99_ms']:<7.1f}"


def _table(label: str, r: dict, conc: tuple[int, ...]) -> list[str]:
    best = max(r["raw_per_s"].values())
    raw = ", ".join(f"b{b}: {v:.1f}" for b, v in r["raw_per_s"].items())
    lines = [f"\n{label}: raw ONNX Runtime inputs/s ({raw}); best {best:.1f}"]
    if r.get("note"):
        lines.append(f"  ({r['note']})")
    lines.append(f"{'server':12s} " + " ".join(f"{'c=' + str(c) + ' req/s':>12s} {'p50/p99 ms':>15s}" for c in conc))
    for kind, per_c in r["http"].items():
        cells = [_cell(per_c[c]) for c in conc]
        lines.append(f"{kind:12s} " + " ".join(cells))
    bad = sum(v["non_2xx"] + v.get("socket_errors", 0) for per_c in r["http"].values() for v in per_c.values())
    lines.append(f"  non-2xx responses and socket errors in all runs: {bad}")
    return lines


def _check(name: str, value: float, target: float, fmt: str = "{:.2f}", higher: bool = True) -> str:
    if value == 0.0 and higher:
        return f"  NOT MEASURED {name}: no request completed within wrk's window (run longer: --seconds)"
    met = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    return f"  {'MET    ' if met else 'NOT MET'} {name}: {fmt.format(value)} (target {sign} {fmt.format(target)})"


def targets(results: dict) -> list[str]:
    """The performance issue's CPU targets, each as the ratio measured in this run (default ConvServe)."""
    w, out = results["workloads"], ["\nTargets (default ConvServe: one process, batching on):"]
    lenet = next((v for k, v in w.items() if k.startswith("LeNet-5 (")), None)
    if lenet:
        h = lenet["http"]
        out.append(
            _check(
                "LeNet-5 32 clients, ConvServe / plain FastAPI+ORT",
                h["convserve"][32]["rps"] / h["plain"][32]["rps"],
                2.0,
            )
        )
        out.append(
            _check(
                "LeNet-5 1 client p50 ms, ConvServe vs plain's",
                h["convserve"][1]["p50_ms"],
                h["plain"][1]["p50_ms"],
                higher=False,
            )
        )
        out.append(
            _check(
                "LeNet-5 32 clients, ConvServe / plain FastAPI+PyTorch",
                h["convserve"][32]["rps"] / h["plain_torch"][32]["rps"],
                5.0,
            )
        )
        if "workers2" in h:
            ratio = h["workers2"][32]["rps"] / h["plain"][32]["rps"]
            out.append(f"  (--workers 2 at 32 clients / plain FastAPI+ORT: {ratio:.2f})")
    r50 = next((v for k, v in w.items() if k.startswith("ResNet-50")), None)
    if r50:
        h, best = r50["http"], max(r50["raw_per_s"].values())
        for c in (8, 32):
            out.append(
                _check(f"ResNet-50 {c} clients, ConvServe / raw ORT best batch", h["convserve"][c]["rps"] / best, 0.95)
            )
        p = h["convserve"][8]
        out.append(_check("ResNet-50 8 clients, p99 / p50", p["p99_ms"] / p["p50_ms"], 2.0, higher=False))
        if "preferred" in h:
            ratios = " / ".join(f"{h['preferred'][c]['rps'] / best:.2f}" for c in (8, 32))
            size = r50.get("preferred_batch")
            out.append(f"  (preferred_batch_size {size}: 8 / 32 clients / raw best batch {ratios})")
        tuned = (r50.get("batch_tuning") or {}).get("convserve")
        if tuned:
            out.append(f"  (ConvServe's warm-up batch tuning chose preferred {tuned['preferred'] or 'none'})")
    if "cold_start" in results:
        out.append(
            _check(
                "cold start to ready, every committed model (s)",
                results["cold_start"]["median_s"],
                5.0,
                "{:.2f}",
                higher=False,
            )
        )
    return out  # fmt: skip


def _plot(results: dict, conc: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = results["workloads"]
    fig, axes = plt.subplots(2, len(w), figsize=(4.2 * len(w), 7), squeeze=False)
    for j, (label, r) in enumerate(w.items()):
        top, bottom = axes[0, j], axes[1, j]
        for kind, per_c in r["http"].items():
            (line,) = top.plot(conc, [per_c[c]["rps"] for c in conc], marker="o", label=kind)
            bottom.plot(
                conc, [per_c[c]["p50_ms"] for c in conc], marker="o", color=line.get_color(), label=f"{kind} p50"
            )
            bottom.plot(conc, [per_c[c]["p99_ms"] for c in conc], ls=":", color=line.get_color())
        top.axhline(max(r["raw_per_s"].values()), color="grey", ls="--", label="raw ORT best batch")
        top.set_title(label, fontsize=8)
        top.set_ylabel("requests/s")
        bottom.set_ylabel("latency ms (solid p50, dotted p99)")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrent clients")
        top.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(results: dict, conc: tuple[int, ...], out_dir: Path) -> None:
    lines = []
    for label, r in results["workloads"].items():
        lines += _table(label, r, conc)
    if "cold_start" in results:
        cs = results["cold_start"]
        n = len(cs["runs_s"])
        lines.append(f"\ncold start to /health/ready, {cs['models']} models: {cs['median_s']:.2f} s (median of {n})")
    if "memory" in results:
        m = results["memory"]
        lines.append(f"RSS after warm-up {m['rss_warm_mb']:.0f} MiB, ")
        lines[-1] += f"after {m['requests']:,} more requests {m['rss_after_mb']:.0f} MiB"
    lines += targets(results)
    lines.append(f"\nbench wall time: {results['wall_s'] / 60:.1f} min")
    text = "\n".join(lines)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (out_dir / f"{stamp}.txt").write_text(text + "\n")
    if results["workloads"]:
        _plot(results, conc, out_dir / f"{stamp}.png")
    print(f"\nwritten: {out_dir / stamp}.json/.txt" + ("/.png" if results["workloads"] else ""))
