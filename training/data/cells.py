"""Synthetic fluorescence-like microscopy: cells that touch and overlap slightly, with instance labels.

Each image (16-bit, like real microscopy) holds ellipse-like blobs of varied size, brightness and
texture, many of them in touching clusters, a dimmer line where two cells meet, uneven
background, blur and noise. Classes follow the lecture's contour labels: 0 background, 1 cell,
2 border between touching cells. Everything is deterministic by seed. ``elastic_deform`` is the
U-Net paper's augmentation (smooth random displacement fields).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

CLASSES = ["background", "cell", "border"]


@dataclass
class CellImage:
    image: np.ndarray  # uint16 (H, W)
    instances: np.ndarray  # int32 (H, W): 0 background, 1..N cells
    classes: np.ndarray  # uint8 (H, W): CLASSES


def classes_from_instances(instances: np.ndarray, outline: bool = False, contact_px: int = 1) -> np.ndarray:
    """Cell pixels that touch a *different* cell (8-neighbourhood) become border: a line 2 px wide;
    ``contact_px`` (px each side) widens it - pixels with another cell within that many (Chebyshev).
    With ``outline`` every cell's outermost ring is border, beside background too (the image's edge
    excepted), so the border the network learns is one cue - where a cell ends - whatever lies beyond."""
    classes = (instances > 0).astype(np.uint8)
    r = int(contact_px)
    padded = np.pad(instances, r, mode="edge" if outline else "constant")
    h, w = instances.shape
    border = np.zeros(instances.shape, bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            nb = padded[r + dy : r + dy + h, r + dx : r + dx + w]
            border |= (nb != instances) & (instances != 0) & ((nb != 0) | outline)
    classes[border] = 2
    return classes


def _place_cells(rng: np.random.Generator, size: int, n: int, radius: tuple[float, float]) -> list[tuple]:
    """Centres, semi-axes and angles; most cells are put against an existing one to form clusters."""
    cells: list[tuple] = []
    for _ in range(n):
        for _attempt in range(30):
            a = rng.uniform(*radius)
            b = a * rng.uniform(0.6, 1.0)
            if cells and rng.random() < 0.7:
                cy, cx, a2, b2, _ = cells[rng.integers(len(cells))]
                d = (a + b) / 2 + (a2 + b2) / 2
                t = rng.uniform(0, 2 * np.pi)
                y, x = cy + np.sin(t) * d * rng.uniform(0.8, 0.97), cx + np.cos(t) * d * rng.uniform(0.8, 0.97)
            else:
                y, x = rng.uniform(a, size - a), rng.uniform(a, size - a)
            if not (0 <= y < size and 0 <= x < size):
                continue
            ok = all(np.hypot(y - c[0], x - c[1]) > 0.7 * ((a + b) / 2 + (c[2] + c[3]) / 2) for c in cells)
            if ok:
                cells.append((y, x, a, b, rng.uniform(0, np.pi)))
                break
    return cells


def generate_cell_image(
    rng: np.random.Generator,
    size: int = 128,
    n_cells: tuple[int, int] = (8, 18),
    radius: tuple[float, float] = (7.0, 13.0),
) -> CellImage:
    cells = _place_cells(rng, size, int(rng.integers(*n_cells)), radius)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    q = np.full((len(cells) + 1, size, size), np.inf)  # normalised elliptic distance per cell (< 1 inside)
    for i, (cy, cx, a, b, t) in enumerate(cells, start=1):
        dy, dx = yy - cy, xx - cx
        u, v = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
        wobble = 1 + 0.08 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6.3))  # not perfect ellipses
        q[i] = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    nearest = q.argmin(0)  # overlapping cells meet where their normalised distances are equal
    instances = np.where(q.min(0) <= 1.0, nearest, 0).astype(np.int32)
    from modelrepo.segmentation import relabel

    instances = relabel(instances, min_size=12)
    classes = classes_from_instances(instances)

    # intensities (arbitrary 16-bit units): uneven background, textured cells, dim contact lines
    bg = 1200 + 600 * rng.random() * (xx / size) + 500 * rng.random() * (yy / size)
    bg += 800 * np.exp(-((xx - rng.uniform(0, size)) ** 2 + (yy - rng.uniform(0, size)) ** 2) / (2 * (size / 2) ** 2))
    img = bg.copy()
    texture = 1 + 0.18 * ndi.gaussian_filter(rng.standard_normal((size, size)), 2.0) / 0.14
    for lab in range(1, int(instances.max()) + 1):
        m = instances == lab
        qm = q.min(0)
        profile = np.clip(1.05 - 0.35 * qm**2, 0.5, 1.0)  # dimmer towards the edge
        img[m] += rng.uniform(4000, 16000) * (profile * texture)[m]
    contact = ndi.gaussian_filter((classes == 2).astype(np.float64), 0.8)
    img *= 1 - rng.uniform(0.15, 0.4) * np.clip(contact * 2, 0, 1)
    img = ndi.gaussian_filter(img, rng.uniform(0.7, 1.6))
    img = img + rng.standard_normal(img.shape) * (np.sqrt(np.maximum(img, 0)) * rng.uniform(1.5, 4) + 80)
    image = np.clip(img, 0, 65535).astype(np.uint16)
    return CellImage(image, instances, classes)


def make_cell_dataset(n: int, seed: int, size: int = 128) -> list[CellImage]:
    rng = np.random.default_rng(seed)
    return [generate_cell_image(rng, size) for _ in range(n)]


def elastic_deform(
    image: np.ndarray, instances: np.ndarray, rng: np.random.Generator, alpha: float = 8.0, sigma: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacement (alpha px, smoothness sigma): bilinear for the image, nearest for labels."""
    h, w = image.shape
    dy = ndi.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma)
    dx = ndi.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma)
    scale = alpha / max(np.abs(dy).max(), np.abs(dx).max(), 1e-6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = [yy + dy * scale, xx + dx * scale]
    warped = ndi.map_coordinates(image.astype(np.float32), coords, order=1, mode="reflect")
    labels = ndi.map_coordinates(instances, coords, order=0, mode="reflect")
    return warped.astype(image.dtype), labels.astype(np.int32)


def augment_cells(
    image: np.ndarray, inst: np.ndarray, rng: np.random.Generator, elastic: bool, zoom: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """One training view: the paper's elastic deformation (70 %), with probability ``zoom`` a crop magnified
    1-3x back to the full size (bilinear; labels nearest), a rotation by 90 degrees and a flip."""
    if elastic and rng.random() < 0.7:
        image, inst = elastic_deform(image, inst, rng)
    if zoom and rng.random() < zoom:
        h, w = image.shape
        z = float(np.exp(rng.uniform(0, np.log(3.0))))
        ch, cw = max(8, round(h / z)), max(8, round(w / z))
        y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = image[y : y + ch, x : x + cw].astype(np.float32)
        image = ndi.zoom(crop, (h / ch, w / cw), order=1, grid_mode=True, mode="nearest")[:h, :w]
        inst = ndi.zoom(inst[y : y + ch, x : x + cw], (h / ch, w / cw), order=0, grid_mode=True, mode="nearest")[:h, :w]
    k = int(rng.integers(4))
    image, inst = np.rot90(image, k), np.rot90(inst, k)
    if rng.random() < 0.5:
        image, inst = image[:, ::-1], inst[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(inst)
