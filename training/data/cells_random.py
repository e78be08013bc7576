"""Domain-randomised fluorescence cells: the segmenter's training data.

Everything a microscope and a sample vary is drawn per image: cell size (radius 4-36 px), shape
family (round, elliptical, elongated, lobed/irregular), density from sparse to confluent with
touching and overlapping cells (parted where their distances are equal or, optionally, stacked: the upper
one owns the overlap), intensity profile (flat, dome, a centre-peaked fall-off whose edge
may be a tenth of the centre, rim-bright, textured, a bright nucleus in dim cytoplasm), bright
puncta, a wide spread of brightness (dim nuclei beside bright ones), background level, gradient,
haze and vignetting, out-of-focus blur with a heavy-tailed halo, Poisson + Gaussian noise over a wide
SNR range, hot pixels, 8-, 12- or 16-bit storage.
Classes as in ``cells.py`` (background / cell / 2 px border between touching cells). Deterministic
by seed. The robustness of the model is judged on ``cells_alt.py``, which shares no code with this.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from modelrepo.segmentation import relabel
from training.data.cells import CellImage, classes_from_instances

RADIUS = (4.0, 36.0)


def _shapes(rng: np.random.Generator, n: int, r0: float) -> list[dict]:
    family_p = rng.dirichlet(np.ones(4))  # round, elliptical, elongated, lobed: this image's mix
    cells = []
    for _ in range(n):
        fam = int(rng.choice(4, p=family_p))
        a = r0 * rng.uniform(0.75, 1.3)
        ratio = [rng.uniform(0.85, 1.0), rng.uniform(0.55, 0.85), rng.uniform(0.3, 0.55), rng.uniform(0.7, 1.0)][fam]
        harmonics = [(k, rng.uniform(0.06, 0.22) / k**0.5, rng.uniform(0, 6.3)) for k in rng.choice([2, 3, 4, 5], 2)]
        cells.append({"a": a, "b": a * ratio, "t": rng.uniform(0, np.pi), "lobes": harmonics if fam == 3 else []})
    return cells


def _place(rng: np.random.Generator, cells: list[dict], size: int, clump: float, overlap: float) -> list[dict]:
    """Positions: with probability ``clump`` against an existing cell (touching or overlapping by up to
    ``overlap`` of the radii), else anywhere; cells too far inside another are dropped."""
    placed: list[dict] = []
    for c in cells:
        r = (c["a"] + c["b"]) / 2
        for _ in range(25):
            if placed and rng.random() < clump:
                o = placed[rng.integers(len(placed))]
                d = (r + (o["a"] + o["b"]) / 2) * rng.uniform(1 - overlap, 1.02)
                ang = rng.uniform(0, 2 * np.pi)
                y, x = o["y"] + d * np.sin(ang), o["x"] + d * np.cos(ang)
            else:
                y, x = rng.uniform(-0.3 * r, size + 0.3 * r), rng.uniform(-0.3 * r, size + 0.3 * r)
            ok = all(np.hypot(y - o["y"], x - o["x"]) > (1 - overlap) * (r + (o["a"] + o["b"]) / 2) for o in placed)
            if ok:
                placed.append(c | {"y": y, "x": x})
                break
    return placed


def _distances(cells: list[dict], size: int) -> np.ndarray:
    """(N, H, W) normalised elliptic distance per cell (< 1 inside), lobes included."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    q = np.full((len(cells), size, size), np.inf)
    for i, c in enumerate(cells):
        dy, dx = yy - c["y"], xx - c["x"]
        u = dx * np.cos(c["t"]) + dy * np.sin(c["t"])
        v = -dx * np.sin(c["t"]) + dy * np.cos(c["t"])
        ang = np.arctan2(v, u)
        wobble = 1 + 0.05 * np.sin(3 * ang + c["t"]) + sum(amp * np.sin(k * ang + ph) for k, amp, ph in c["lobes"])
        q[i] = np.sqrt((u / c["a"]) ** 2 + (v / c["b"]) ** 2) / wobble
    return q


def _profile(rng: np.random.Generator, q: np.ndarray, size: int, r0: float) -> np.ndarray:
    """Intensity within cells as a function of the normalised distance ``q`` (0 centre, 1 edge)."""
    kind = rng.choice(["flat", "dome", "falloff", "falloff", "rim", "textured", "nucleus"])
    if kind == "flat":
        return np.ones_like(q)
    if kind == "dome":
        return np.clip(1.0 - rng.uniform(0.3, 0.8) * q**2, 0.2, 1)
    if kind == "falloff":  # exp(-k q^p): Gaussian-like to exponential; the edge at exp(-k) of the centre
        return np.exp(-rng.uniform(0.3, 2.5) * np.clip(q, 0, 1) ** rng.uniform(0.7, 2.5))
    if kind == "rim":
        return 0.45 + 0.55 * np.clip(q, 0, 1) ** rng.uniform(2, 5)
    if kind == "nucleus":  # the cell is the cytoplasm's extent; the nucleus inside it is brighter
        edge = rng.uniform(0.3, 0.65)
        return np.where(q < edge, 1.0, rng.uniform(0.12, 0.5)) * (1 - 0.2 * np.clip(q, 0, 1))
    tex = ndi.gaussian_filter(rng.standard_normal((size, size)), max(0.8, r0 / rng.uniform(3, 8)))
    return np.clip(1 + rng.uniform(0.2, 0.5) * tex / (tex.std() + 1e-9), 0.15, 2.0)


def _puncta(rng: np.random.Generator, instances: np.ndarray, r0: float) -> np.ndarray:
    """Bright spots (nucleoli, vesicles) at random points inside cells, relative brightness up to 1.5."""
    ys, xs = np.nonzero(instances)
    spots = np.zeros(instances.shape)
    if ys.size == 0:
        return spots
    pick = rng.integers(ys.size, size=int(rng.integers(1, 4) * instances.max()))
    spots[ys[pick], xs[pick]] = rng.uniform(0.3, 1.5, pick.size)
    width = max(0.7, r0 * rng.uniform(0.08, 0.25))
    return ndi.gaussian_filter(spots, width) * (2 * np.pi * width * width)


def _optics(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Out-of-focus blur: a Gaussian core, sometimes with a wide halo (a heavy-tailed PSF)."""
    core = ndi.gaussian_filter(img, rng.uniform(0.3, 3.0))
    if rng.random() < 0.5:
        halo = rng.uniform(0.05, 0.35)
        core = (1 - halo) * core + halo * ndi.gaussian_filter(img, rng.uniform(3.0, 9.0))
    return core


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Shot noise, read noise, hot pixels; 8-bit, 12-bit or 16-bit storage with an offset."""
    photons = np.exp(rng.uniform(np.log(15), np.log(3000)))  # at the brightest cell: SNR ~4 .. ~55
    img = rng.poisson(np.clip(img, 0, None) * photons) / photons
    img = img + rng.normal(0, rng.uniform(0.0, 0.06), img.shape)
    hot = rng.random(img.shape) < rng.choice([0.0, 1e-4, 5e-4])
    kind = rng.choice(["8", "12", "16"], p=[0.3, 0.3, 0.4])
    top, gain, offset = {
        "8": (255, (120, 250), 20),
        "12": (4095, (1500, 3800), 300),
        "16": (65535, (1500, 50000), 2000),
    }[kind]
    out = np.round(img * rng.uniform(*gain) + rng.uniform(0, offset))
    out[hot] = top
    return np.clip(out, 0, top).astype(np.uint8 if kind == "8" else np.uint16)


SEAM = 0.7  # share of images whose touching cells meet at a dimmer contact line


def _topmost(q: np.ndarray) -> np.ndarray:
    """(N, H, W) distances -> (H, W) index of the last-placed cell covering each pixel (the nearest where none
    does): cells stacked in placement order, the upper one owning the overlap and showing its whole outline."""
    inside = q[::-1] <= 1.0
    return np.where(inside.any(0), len(q) - 1 - inside.argmax(0), q.argmin(0))


def generate_random_cells(
    rng: np.random.Generator,
    size: int = 128,
    radius: tuple[float, float] = RADIUS,
    seam: float = SEAM,
    occlude: float = 0.0,
) -> CellImage:
    r0 = float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))
    cover = rng.uniform(0.05, 0.8)  # sparse .. confluent
    n = int(np.clip(cover * size * size / (np.pi * r0 * r0), 1, 250))
    shapes, clump = _shapes(rng, n, r0), rng.uniform(0.2, 0.9)
    stacked = occlude > 0 and rng.random() < occlude  # no draw at 0: the same images as before the option
    cells = _place(rng, shapes, size, clump, overlap=rng.uniform(0.0, 0.5 if stacked else 0.3))
    if not cells:
        cells = _place(rng, _shapes(rng, 1, r0), size, 0.0, 0.0)
    q = _distances(cells, size)
    owner = _topmost(q) if stacked else q.argmin(0)
    qown = np.take_along_axis(q, owner[None], 0)[0]  # the owning cell's distance: its profile, its edge
    instances = relabel(np.where(q.min(0) <= 1.0, owner + 1, 0).astype(np.int32), min_size=max(6, int(r0)))
    classes = classes_from_instances(instances)

    # photons: per-cell brightness over up to a 10x range, the image's profile, dim contact lines
    spread = rng.uniform(1.0, 10.0)
    img = np.zeros((size, size))
    prof = _profile(rng, qown, size, r0)
    for lab, sl in zip(range(1, int(instances.max()) + 1), ndi.find_objects(instances)):
        if sl is not None:
            m = instances[sl] == lab
            img[sl][m] += np.exp(rng.uniform(0, np.log(spread))) * prof[sl][m]
    img /= max(img.max(), 1e-9)
    if rng.random() < seam:
        contact = ndi.gaussian_filter((classes == 2).astype(np.float64), 0.8)
        img *= 1 - rng.uniform(0.1, 0.5) * np.clip(contact * 2, 0, 1)
    if rng.random() < 0.4:
        img = img + _puncta(rng, instances, r0) * (instances > 0) * img.max()
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = rng.uniform(0.0, 0.3) * (1 + rng.uniform(-0.8, 0.8) * (yy - 0.5) + rng.uniform(-0.8, 0.8) * (xx - 0.5))
    bg = bg + rng.uniform(0, 0.15) * ndi.gaussian_filter(rng.standard_normal((size, size)), size / 6) / 0.05
    img = _optics(rng, img) + np.clip(bg, 0, None)
    cy, cx = rng.uniform(0, 1, 2)
    img = img * (1 - rng.uniform(0, 0.4) * ((yy - cy) ** 2 + (xx - cx) ** 2))  # vignetting
    image = _camera(rng, img / max(img.max(), 1e-9))
    return CellImage(image, instances, classes)


def make_random_cell_dataset(
    n: int, seed: int, size: int = 128, seam: float = SEAM, radius: tuple[float, float] = RADIUS, occlude: float = 0.0
) -> list[CellImage]:
    rng = np.random.default_rng(seed)
    return [generate_random_cells(rng, size, radius, seam, occlude) for _ in range(n)]
