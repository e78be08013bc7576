"""A second, independently written cell generator, used only for evaluation ("a microscope we did
not train on"). It shares no code with ``cells.py`` or ``cells_random.py``:

- shapes are star-convex polygons (a random Fourier series of the radius around the centre),
  rasterised with Pillow; later cells occlude earlier ones where they overlap;
- positions come from a jittered grid thinned at random, plus daughter cells budding off;
- intensity is a cytoplasm/nucleus model: an exponential fall-off from the centre, bright spots
  (nucleoli or vesicles) as Gaussians, and a per-cell expression level from a log-normal;
- the optics are a Moffat point-spread function applied by FFT convolution with vignetting;
- the camera is photon shot noise, gain, a read-noise floor, an offset, hot pixels and a 12-bit ADC,
  stored as 16-bit (or rescaled to 8-bit).
Deterministic by seed; classes as elsewhere (background / cell / border between touching cells).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.signal import fftconvolve

from modelrepo.segmentation import relabel
from training.data.cells import CellImage, classes_from_instances


def _polygon(rng: np.random.Generator, cy: float, cx: float, radius: float) -> list[tuple[float, float]]:
    n = 48
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(1, 6):
        r += rng.normal(0, 0.12 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    stretch = rng.uniform(0.5, 1.0)
    rot = rng.uniform(0, np.pi)
    x, y = radius * r * np.cos(theta), radius * r * stretch * np.sin(theta)
    xr, yr = x * np.cos(rot) - y * np.sin(rot), x * np.sin(rot) + y * np.cos(rot)
    return list(zip((cx + xr).tolist(), (cy + yr).tolist()))


def _centres(rng: np.random.Generator, size: int, radius: float) -> list[tuple[float, float, float]]:
    step = radius * rng.uniform(1.7, 3.5)
    keep = rng.uniform(0.35, 1.0)
    out = []
    for gy in np.arange(step / 2, size, step):
        for gx in np.arange(step / 2, size, step):
            if rng.random() < keep:
                r = radius * np.exp(rng.normal(0, 0.18))
                out.append((gy + rng.normal(0, step / 4), gx + rng.normal(0, step / 4), r))
                if rng.random() < 0.25:  # a daughter cell budding off: touching
                    a = rng.uniform(0, 2 * np.pi)
                    d = 1.7 * r
                    out.append((out[-1][0] + d * np.sin(a), out[-1][1] + d * np.cos(a), r * rng.uniform(0.7, 1.0)))
    return out


def _moffat(width: float, beta: float) -> np.ndarray:
    half = int(np.ceil(4 * width)) + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    k = (1 + (x * x + y * y) / (width * width)) ** (-beta)
    return k / k.sum()


def alt_cell_image(rng: np.random.Generator, size: int = 160, radius: tuple[float, float] = (5.0, 35.0)) -> CellImage:
    r_mean = float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))
    centres = _centres(rng, size, r_mean)
    canvas = Image.new("I", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (cy, cx, r) in enumerate(centres, start=1):
        draw.polygon(_polygon(rng, cy, cx, r), fill=i)
    instances = relabel(np.asarray(canvas, np.int32), min_size=max(8, int(r_mean)))
    classes = classes_from_instances(instances)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    signal = np.zeros((size, size))
    decay = rng.uniform(0.0, 1.5)
    for lab in range(1, int(instances.max()) + 1):
        m = instances == lab
        ys, xs = np.nonzero(m)
        cy, cx, r = ys.mean(), xs.mean(), np.sqrt(m.sum() / np.pi)
        level = rng.lognormal(0, 0.6)
        d = np.hypot(yy[m] - cy, xx[m] - cx) / r
        val = level * np.exp(-decay * d)
        for _ in range(rng.integers(0, 4)):  # bright spots
            sy, sx = cy + rng.normal(0, r / 3), cx + rng.normal(0, r / 3)
            val += level * rng.uniform(0.3, 1.2) * np.exp(-((yy[m] - sy) ** 2 + (xx[m] - sx) ** 2) / (2 * (r / 6) ** 2))
        signal[m] = val
    signal = fftconvolve(signal, _moffat(rng.uniform(0.8, 3.0), rng.uniform(1.5, 4.0)), mode="same")
    vignette = 1 - rng.uniform(0, 0.4) * (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size / 2) ** 2)
    background = rng.uniform(0.02, 0.25) * (1 + 0.3 * np.sin(yy / size * rng.uniform(1, 4) + rng.uniform(0, 6)))
    flux = (signal + background) * vignette / max(signal.max(), 1e-9)
    photons = rng.uniform(30, 1500)
    gain = rng.uniform(0.5, 2.5)
    adu = rng.poisson(np.clip(flux, 0, None) * photons) * gain + rng.normal(100, rng.uniform(2, 12), flux.shape)
    hot = rng.random(flux.shape) < 2e-4
    adu[hot] = 4095
    adu = np.clip(np.round(adu), 0, 4095)
    if rng.random() < 0.3:
        image = np.round(adu / 4095 * 255).astype(np.uint8)
    else:
        image = adu.astype(np.uint16)
    return CellImage(image, instances, classes)


def make_alt_cell_dataset(n: int, seed: int, size: int = 160) -> list[CellImage]:
    rng = np.random.default_rng(seed)
    return [alt_cell_image(rng, size) for _ in range(n)]
