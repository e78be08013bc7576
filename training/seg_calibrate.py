"""Which cell sizes a segmenter should see at their own size: the card's ``output.diameter_native``, chosen on
validation images.

The network is trained on cells of every size in its range at their own scale (radius 4-36 px), so bringing
every image's cells to the median trained diameter - what ``diameter=`` did before 2026-12-06 - helps nobody
whose cells are already in that range: small cells enlarged 2x come with enlarged, correlated noise the network
never saw. Instead cells within ``diameter_native`` are segmented as they are, and only smaller or larger ones
are rescaled to its nearer end (``modelrepo.cellseg.target_scale``). First its upper end is chosen among
``TOPS`` (and the trained median and range top), its lower end the trained range's; then, with that top, a
higher lower end among ``LOWS`` (enlarging small cells; on 2026-12-06 it paid neither for the committed network
nor for one fine-tuned on enlarged crops, ``--zoom``). Each time the candidate whose *worst* validation set is
best wins (ties: the mean), over the served pipeline with the diameter estimated and with each image's true
median diameter given:

- ``own``: the training generator's validation split and a second one from another seed (never a test seed);
- ``first``: the first generator's validation split (``cells.py``; not when it is the training generator);
- ``own_x2``: the first ``own`` split at twice the magnification (cells far above the trained sizes).
The independent generator (``cells_alt.py``) is never looked at here: it stays a held-out set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from modelrepo.card import OutputSpec
from modelrepo.repository import CARD_FILE, check_model_dir
from training.data.cells import CellImage, make_cell_dataset
from training.seg_metrics import object_f1
from training.tasks.segment import GENERATORS, SegmentConfig, magnified, splits
from training.tasks.segment_eval import segment_all, true_d

TOPS = (10.0, 12.0, 14.0, 16.0, 26.0)  # with the trained median and range top
LOWS = (10.0, 12.0, 14.0)  # then, with the chosen top: enlarge cells smaller than this
SECOND_SEED = 5  # the second own validation split: the val split of seed cfg.seed + 5


def validation_sets(cfg: SegmentConfig) -> dict[str, list[CellImage]]:
    own = splits(cfg, ("val",))["val"]
    if cfg.data not in GENERATORS:
        return {"own": own}
    second = splits(replace(cfg, seed=cfg.seed + SECOND_SEED, n_val=cfg.n_val + 16), ("val",))["val"]
    sets = {"own": own + second, "own_x2": magnified(own, 2)}
    if cfg.data != "cells":
        sets["first"] = make_cell_dataset(cfg.n_val, seed=cfg.seed * 1000 + 1, size=cfg.size)
    return sets


def candidates(out: OutputSpec) -> list[tuple[float, float] | None]:
    """None (rescale to the trained median, the old rule) and (range low, top) for each top in the range."""
    assert out.diameter_range is not None and out.diameter_px is not None
    lo, hi = out.diameter_range
    tops = sorted({t for t in (*TOPS, out.diameter_px, hi) if lo < t <= hi})
    return [None, *[(lo, round(float(t), 2)) for t in tops]]


def lows(chosen: tuple[float, float]) -> list[tuple[float, float]]:
    """With the chosen top: a higher low end for each of ``LOWS`` below it (small cells enlarged to it)."""
    return [(lo, chosen[1]) for lo in LOWS if chosen[0] < lo < chosen[1]]


def measure(logits_of, sets: dict[str, list[CellImage]], spec, out: OutputSpec) -> dict[str, float]:
    """Object F1 per validation set, diameter estimated (``<set>``) and given (``<set> given``)."""
    row = {}
    for name, data in sets.items():
        truth, images = [c.instances for c in data], [c.image for c in data]
        row[name] = object_f1(segment_all(logits_of, images, spec, out), truth)["f1"]
        row[f"{name} given"] = object_f1(segment_all(logits_of, images, spec, out, true_d(data)), truth)["f1"]
    return row


def choose(logits_of, cfg: SegmentConfig, spec, out: OutputSpec) -> tuple[OutputSpec, list[tuple]]:
    """The card's output with the chosen ``diameter_native``, and the table: (candidate, {set: F1})."""
    if out.diameter_range is None or out.diameter_px is None:
        return out, []
    sets = validation_sets(cfg)

    def row(cand) -> tuple:
        return cand, measure(logits_of, sets, spec, out.model_copy(update={"diameter_native": cand}))

    table = [row(cand) for cand in candidates(out)]
    chosen = best(table)
    if chosen is not None:
        table += [row(cand) for cand in lows(chosen)]
    return out.model_copy(update={"diameter_native": best(table)}), table


def best(table: list[tuple]):
    """The candidate whose worst set is best; ties by the mean over the sets."""
    return max(table, key=lambda r: (round(min(r[1].values()), 4), float(np.mean(list(r[1].values())))))[0]


def markdown(table: list[tuple], chosen) -> str:
    cols = list(table[0][1])
    lines = [
        "| segmented at their own size (px) | " + " | ".join(cols) + " | worst |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for cand, row in table:
        label = "none (all rescaled to the trained median)" if cand is None else f"{cand[0]:g}-{cand[1]:g}"
        label = f"**{label} (chosen)**" if cand == chosen else label
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.4f}" for c in cols) + f" | {min(row.values()):.4f} |")
    return "\n".join(lines) + "\n"


def recalibrate(model_dir: Path, report: Path | None = None) -> tuple[str, dict[str, float]]:
    """Choose ``diameter_native`` for a committed segmenter on validation images, write it into the card and
    re-measure the card's held-out figures through the new pipeline (same ONNX file; ``make eval``'s
    measurement). (table, new metrics)."""
    from training.eval_repo import load_segmenter, measure_segmentation

    entry = check_model_dir(model_dir)
    card = entry.card
    assert card is not None and card.task == "segmentation"
    cfg, logits_of = load_segmenter(entry)
    out, table = choose(logits_of, cfg, card.input, card.output)
    text = markdown(table, out.diameter_native)
    card = card.model_copy(update={"output": out})
    card.dump(entry.path / CARD_FILE)
    metrics = measure_segmentation(check_model_dir(model_dir))
    assert not isinstance(metrics, str)
    card.model_copy(update={"metrics": card.metrics | metrics}).dump(entry.path / CARD_FILE)
    if report is not None:
        report.write_text(f"# {card.name}: which cell sizes are segmented at their own size\n\n" + text)
    return text, metrics
