"""Classification metrics (accuracy, per-class precision/recall, confusion matrix) and their plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)  # rows: truth, columns: prediction
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "n": int(cm.sum()),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "support": int(cm[i].sum())}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "classes": classes,
    }


def plot_confusion(report: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"])
    classes = report["classes"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(classes), 0.8 + 0.5 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=90 if len(classes) > 12 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {100 * report['accuracy']:.2f} % (n={report['n']})", fontsize=10)
    save_figure(fig, path, dpi=110)


def write_report(report: dict, out_dir: Path, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "test_report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion(report, out_dir / "confusion_matrix.png", title)


def save_figure(fig, path, dpi: int = 90) -> None:
    """Lay out, write (PNG) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
