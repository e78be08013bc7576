"""Which touching cells does a segmenter merge? Per pair of true cells that touch (4-neighbours): whether one
predicted object holds most of both, with the pair's contrast (the brighter cell's median above the background
over the dimmer's) and the first cell's radius, tallied in bins - what separates the pairs it parts from those it
merges (``python -m training segment-merges MODEL``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.cells import CellImage

CONTRAST_BINS = (1.0, 1.25, 1.5, 2.0, 3.0, np.inf)
RADIUS_BINS_PX = (0.0, 8.0, 14.0, 24.0, np.inf)


def touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """(i, j), i < j: labels of true cells that share a 4-neighbour edge."""
    out: set[tuple[int, int]] = set()
    for a, b in ((instances[:, :-1], instances[:, 1:]), (instances[:-1], instances[1:])):
        m = (a != b) & (a > 0) & (b > 0)
        out |= {(min(p, q), max(p, q)) for p, q in zip(a[m].tolist(), b[m].tolist())}
    return out


def pair_rows(pred: np.ndarray, cell: CellImage) -> list[tuple[bool, float, float]]:
    """(merged, contrast, radius px) per touching pair of ``cell``'s instances, against the prediction ``pred``."""
    inst, img = cell.instances, cell.image.astype(np.float64)
    bg = float(np.median(img[inst == 0])) if (inst == 0).any() else 0.0

    def owner(k: int) -> tuple[int, float]:
        labels, n = np.unique(pred[inst == k], return_counts=True)
        return int(labels[n.argmax()]), float(n.max() / n.sum())

    rows = []
    for i, j in sorted(touching_pairs(inst)):
        (oi, fi), (oj, fj) = owner(i), owner(j)
        above = sorted(max(float(np.median(img[inst == k])) - bg, 1e-6) for k in (i, j))
        radius = float(np.sqrt((inst == i).sum() / np.pi))
        rows.append((oi == oj != 0 and fi > 0.5 and fj > 0.5, above[1] / above[0], radius))
    return rows


def tally(rows: list[tuple[bool, float, float]]) -> dict[str, list[dict[str, float]]]:
    """Share merged per contrast bin and per radius bin (bins without pairs left out), and overall."""
    r = np.array(rows, np.float64).reshape(-1, 3)
    share = float(r[:, 0].mean()) if len(r) else 0.0
    out: dict[str, list[dict[str, float]]] = {"all": [{"pairs": len(r), "merged": share}]}
    for key, col, bins in (("contrast", 1, CONTRAST_BINS), ("radius_px", 2, RADIUS_BINS_PX)):
        out[key] = [
            {"from": lo, "to": hi, "pairs": int(m.sum()), "merged": float(r[m, 0].mean())}
            for lo, hi in zip(bins[:-1], bins[1:])
            if (m := (r[:, col] >= lo) & (r[:, col] < hi)).any()
        ]
    return out


def merges(model: Path, held_out: str = "cross") -> dict[str, list[dict[str, float]]]:
    """``tally`` of the committed-style model folder's served instances on one of its card's held-out sets."""
    from modelrepo.repository import check_model_dir
    from training.eval_repo import load_segmenter
    from training.tasks.segment import held_out_only
    from training.tasks.segment_eval import segment_all

    entry = check_model_dir(model)
    cfg, logits_of = load_segmenter(entry)
    data = held_out_only(cfg)[held_out]
    preds = segment_all(logits_of, [c.image for c in data], entry.card.input, entry.card.output)
    return tally([row for p, c in zip(preds, data) for row in pair_rows(p, c)])


def markdown(t: dict[str, list[dict[str, float]]]) -> str:
    a = t["all"][0]
    lines = [f"touching pairs {a['pairs']}, merged {a['merged']:.1%}", "", "| bin | pairs | merged |", "|---|---|---|"]
    for key in ("contrast", "radius_px"):
        lines += [f"| {key} {b['from']:g}-{b['to']:g} | {b['pairs']} | {b['merged']:.1%} |" for b in t[key]]
    return "\n".join(lines) + "\n"
