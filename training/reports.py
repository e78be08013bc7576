"""Tables and plots for the README and ``docs/``, read from the committed cards (whose figures
``make eval`` re-measures): ``python -m training report``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelrepo.card import ModelCard, ranking_key
from modelrepo.repository import scan_repository
from training.evaluate import save_figure
from training.robustness import LEGIBILITY_LIMITED, headline


def _cards(models: Path, task: str) -> list[ModelCard]:
    return sorted(
        (e.card for e in scan_repository(models) if e.ok and e.card and e.card.task == task), key=lambda c: c.name
    )


def robustness_table(cards: list[ModelCard], ceilings: dict[str, float] | None = None) -> str:
    """Accuracy (%) per variant and model; with ``ceilings``, a last column: an RBF-SVC trained on
    that variant alone (``training.robustness.variant_ceiling``), how legible the variant is at all."""
    cards = [c for c in cards if c.robustness]
    if not cards:
        return ""
    variants = list(cards[0].robustness)
    extra = " SVC trained on the variant itself |" if ceilings else ""
    head = "| variant | " + " | ".join(f"`{c.name}`" for c in cards) + " |" + extra
    rows = [head, "|---" * (len(cards) + 1 + bool(ceilings)) + "|"]
    for v in variants:
        cells = " | ".join(f"{100 * c.robustness.get(v, float('nan')):.1f}" for c in cards)
        tail = (f" {100 * ceilings[v]:.1f} |" if v in ceilings else " - |") if ceilings else ""
        rows.append(f"| {v}{' (not in worst)' if v in LEGIBILITY_LIMITED else ''} | {cells} |{tail}")
    worst = " | ".join(f"**{100 * headline(c.robustness):.1f}**" for c in cards)
    rows.append(f"| **worst** | {worst} |" + (" |" if ceilings else ""))
    return "\n".join(rows)


def plot_misread(card: ModelCard, model_file: Path, variant: str, path: Path) -> int:
    """The held-out digits ``card``'s model misreads in ``variant``: the 8 x 8 original, the upload
    and the framed network input, titled true -> read. Returns how many there are."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import onnxruntime as ort
    from PIL import Image

    from training.data import load_digits_splits
    from training.robustness import SUITE_SEED, decode_files
    from training.uploads import VARIANTS

    test = load_digits_splits(seed=card.training.seed).test
    k = list(VARIANTS).index(variant)
    rng = np.random.default_rng([SUITE_SEED, k])
    files = [VARIANTS[variant](d, rng) for d in test.images]
    x = decode_files(files, card.input)
    sess = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    read = sess.run(None, {card.input.name: x})[0].argmax(1)
    wrong = np.nonzero(read != test.labels)[0]
    fig, axes = plt.subplots(3, max(2, len(wrong)), figsize=(1.1 * max(2, len(wrong)) + 1, 4), squeeze=False)
    for j, i in enumerate(wrong):
        axes[0, j].imshow(test.images[i], cmap="gray")
        axes[0, j].set_title(f"{test.labels[i]} -> {read[i]}", fontsize=9)
        axes[1, j].imshow(np.asarray(Image.open(io.BytesIO(files[i]))), cmap="gray")
        axes[2, j].imshow(x[i, 0], cmap="gray")
    for a in axes.ravel():
        a.axis("off")
    for row, label in enumerate(("8 x 8 digit", "upload", "network input")):
        axes[row, 0].text(-0.15, 0.5, label, transform=axes[row, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{card.name} on {variant}: the {len(wrong)} misread held-out digits (true -> read)", fontsize=10)
    save_figure(fig, path, dpi=90)
    return len(wrong)


def plot_mnist(card: ModelCard, model_file: Path, path: Path, shown: int = 16) -> float:
    """``card``'s model on the suite's real handwriting (MNIST): the confusion matrix and the first ``shown``
    misreads (upload and framed network input). Returns the accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import onnxruntime as ort

    from training.robustness import decode_files, mnist_files

    files, labels = mnist_files()
    x = decode_files(files, card.input)
    sess = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    read = np.concatenate([sess.run(None, {card.input.name: x[i : i + 500]})[0] for i in range(0, len(x), 500)])
    read = read.argmax(1)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels, read), 1)
    wrong = np.nonzero(read != labels)[0]
    wrong = wrong[np.linspace(0, len(wrong) - 1, min(shown, len(wrong))).astype(int)] if len(wrong) else wrong
    fig = plt.figure(figsize=(14, 4.6))
    ax = fig.add_axes((0.03, 0.1, 0.25, 0.78))
    ax.imshow(np.log1p(confusion), cmap="Blues")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(xlabel="read as", ylabel="true", xticks=range(10), yticks=range(10))
    for j, i in enumerate(wrong):
        for row, img in enumerate(
            (decode_files([files[i]], card.input.model_copy(update={"framing": None}))[0, 0], x[i, 0])
        ):
            a = fig.add_axes((0.31 + 0.043 * j, 0.5 - 0.42 * row, 0.04, 0.36))
            a.imshow(img, cmap="gray")
            a.axis("off")
            if row == 0:
                a.set_title(f"{labels[i]}->{read[i]}", fontsize=8)
    accuracy = float((read == labels).mean())
    fig.suptitle(
        f"{card.name} on 5,000 MNIST digits (never trained on): {100 * accuracy:.1f} % read right; "
        "misreads: upload (top), network input (bottom)",
        fontsize=10,
    )
    fig.savefig(path, dpi=90)  # placed by hand: no tight_layout
    plt.close(fig)
    return accuracy


def robustness_ceilings(card: ModelCard) -> dict[str, float]:
    """``variant_ceiling`` for every rendered variant of the suite (not ``drawn``: no training renderings)."""
    from training.data import load_digits_splits
    from training.robustness import variant_ceiling
    from training.uploads import VARIANTS

    splits = load_digits_splits(seed=card.training.seed)
    return {v: variant_ceiling(v, card.input, splits) for v in VARIANTS}


def plot_robustness(cards: list[ModelCard], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cards = [c for c in cards if c.robustness]
    variants = list(cards[0].robustness)
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(cards)
    for k, c in enumerate(cards):
        ax.bar(np.arange(len(variants)) + k * width, [100 * c.robustness[v] for v in variants], width, label=c.name)
    ax.axhline(97, color="k", lw=0.8, ls="--", label="target 97 % (default)")
    names = [f"{v}\n(not in worst)" if v in LEGIBILITY_LIMITED else v for v in variants]
    ax.set_xticks(np.arange(len(variants)) + 0.4 - width / 2, names, rotation=30, ha="right")
    ax.set_ylim(85, 100.5)
    ax.set_ylabel("accuracy on held-out digits (%)")
    ax.set_title("Digit classifiers: robustness suite (make eval)")
    ax.legend(fontsize=8, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.32))
    save_figure(fig, path, dpi=100)


SETS = {
    "": "own generator (held out)",
    "first_": "first generator",
    "cross_": "independent generator",
    "cross_x2_": "independent generator, 2x magnified",
}


METHOD_COLUMNS = {
    "components": "U-Net, components",
    "watershed": "U-Net, watershed",
    "distance": "U-Net, distance cores",
}


def _methods(m: dict[str, float]) -> list[str]:
    """The instance methods the card measured (a distance channel's only where the model has one)."""
    return [k for k in METHOD_COLUMNS if f"object_f1_{k}" in m]


def segmentation_table(card: ModelCard) -> str:
    m = card.metrics
    methods = _methods(m)
    heads = [METHOD_COLUMNS[k] for k in methods] + ["precision / recall (served)", "served, true diameter given"]
    rows = ["| held-out set | " + " | ".join(heads) + " | Otsu + watershed |", "|---" * (len(heads) + 2) + "|"]
    nan = float("nan")
    for prefix, name in SETS.items():
        if f"{prefix}object_f1" not in m:
            continue
        cells = [f"{m.get(f'{prefix}object_f1_{k}', nan):.3f}" for k in methods]
        cells.append(f"{m[f'{prefix}object_precision']:.3f} / {m[f'{prefix}object_recall']:.3f}")
        cells.append(f"{m.get(f'{prefix}object_f1_given_diameter', nan):.3f}")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {m[f'{prefix}baseline_object_f1']:.3f} |")
    return "\n".join(rows)


def plot_segmentation(card: ModelCard, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = card.metrics
    sets = [(p, n) for p, n in SETS.items() if f"{p}object_f1" in m]
    series = [(METHOD_COLUMNS[k], f"object_f1_{k}") for k in _methods(m)]
    series += [("served, true diameter given", "object_f1_given_diameter"), ("Otsu + watershed", "baseline_object_f1")]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, (label, key) in enumerate(series):
        ax.bar(np.arange(len(sets)) + k * width, [m.get(f"{p}{key}", 0.0) for p, _ in sets], width, label=label)
    ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, [n for _, n in sets])
    ax.set_ylim(0, 1)
    ax.set_ylabel("object F1 at IoU >= 0.5")
    ax.set_title(f"{card.name}: held-out sets (served instances: {card.output.instances})")
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path, dpi=100)


def write_reports(models: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    classifiers = _cards(models, "classification")
    if any(c.robustness for c in classifiers):
        ceilings = robustness_ceilings(next(c for c in classifiers if c.robustness))
        (out / "classifier_robustness.md").write_text(
            "# Digit classifiers: robustness suite\n\nAccuracy (%) per variant of the 360 held-out digits "
            "(and 300 pen-drawn digits per drawn variant, and 5,000 real MNIST digits in `mnist`), from the cards; "
            "`make eval` re-measures them. The last column is an "
            "RBF-SVC trained on that variant's renderings of the training digits alone (framed the same way): "
            "how legible the variant is at all. The worst row leaves out the variants marked *not in worst*: "
            "their legibility is limited by the rendering (see `training/robustness.py`; the default model's "
            "misreads are plotted in `classifier_<variant>_misread.png`).\n\n"
            + robustness_table(classifiers, ceilings)
            + "\n"
        )
        plot_robustness(classifiers, out / "classifier_robustness.png")
        written += [out / "classifier_robustness.md", out / "classifier_robustness.png"]
        best = max(  # the default route's classifier
            (e for e in scan_repository(models) if e.ok and e.card.task == "classification" and e.card.robustness),
            key=lambda e: ranking_key(e.card),
        )
        plot_mnist(best.card, best.version_path(), out / "classifier_mnist.png")
        written.append(out / "classifier_mnist.png")
        for variant in LEGIBILITY_LIMITED:
            plot_misread(best.card, best.version_path(), variant, out / f"classifier_{variant}_misread.png")
            written.append(out / f"classifier_{variant}_misread.png")
    for card in _cards(models, "segmentation"):
        if "cross_object_f1" in card.metrics:
            (out / f"{card.name}_generalisation.md").write_text(
                f"# {card.name}: object F1 on held-out sets\n\n" + segmentation_table(card) + "\n"
            )
            plot_segmentation(card, out / f"{card.name}_generalisation.png")
            written += [out / f"{card.name}_generalisation.md", out / f"{card.name}_generalisation.png"]
    return written
