"""Radar reflectivity sequences: a generator of realistic ones, and a loader for folders of real frames.

The generator (deterministic by seed) builds each sequence on a grid a ``margin`` wider than the
output on every side, so that echoes flow in from outside, and crops the centre:

* **Rain structure** - a Gaussian field with a power-law spectrum (power ~ k^-``beta``, as measured
  for radar rain fields; pysteps' FFT noise generators use the same filter). It evolves in the
  Lagrangian frame as a scale-dependent AR(1) process: each Fourier component keeps
  rho(k) = exp(-dt / tau(k)) of itself per step, tau(L) = ``tau_minutes`` * (L / 32 km)^``tau_exponent``,
  so small cells live minutes and large systems hours - cells are born, grow and die (initiation
  and decay) while the large patterns persist.
* **Growth and decay trends** - a smooth field of intensity tendencies (dBZ per step, itself slowly
  varying) accumulates into an intensity offset carried with the rain: a region that is
  intensifying keeps intensifying for a while, something that three frames reveal and that pure
  extrapolation ignores.
* **Motion** - a mean translation (speed and direction per sequence), a solid rotation and a
  deformation about the centre, and a smooth random streamfunction (rotational flow varying in
  space); all drift slowly in time. Advection is semi-Lagrangian (backward; cubic for the structure).
* **Line-shaped systems** - an anisotropic spectrum (``anisotropy`` > 1): structures that many times
  longer along a random direction than across it (squall lines, frontal bands).
* **Reflectivity** - latent value above the threshold that gives the sequence's wet fraction maps
  to ``rain_threshold`` + ``dbz_per_sigma`` * excess, capped at ``max_dbz``; below it, no rain
  (``zerovalue``).

Everything is in dBZ on a 1 km grid with 6-minute steps by default. ``REGIMES`` names weather the
default parameters rarely draw (slow and fast motion, stratiform and convective rain, lines, strong
growth and decay) as changes to them; the nowcaster is verified on each regime separately.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from scipy import ndimage

from modelrepo.radar_io.frames import OPERA_GAIN, OPERA_OFFSET


@dataclass(frozen=True)
class RadarParams:
    size: int = 128  # output grid, pixels (square)
    margin: int = 32  # extra grid on every side: inflow comes from here
    pixel_km: float = 1.0
    timestep_minutes: float = 6.0
    spinup_steps: int = 4  # steps run before the first frame kept, so frame 0 is not special
    beta: float = 3.0  # spectral slope of the rain structure (power ~ k^-beta)
    min_wavelength_km: float = 3.0
    tau_minutes: float = 120.0  # Lagrangian lifetime of 32 km structures
    tau_exponent: float = 0.8  # lifetime ~ wavelength^tau_exponent
    wet_fraction: tuple[float, float] = (0.15, 0.45)
    speed_px: tuple[float, float] = (1.0, 5.0)  # mean translation, px per step (6-30 km per 6 min)
    rotation_rad: float = 0.006  # |angular velocity| up to this, rad per step
    deformation: float = 0.004  # |stretching / shear rate| up to this, per step
    swirl_px: float = 0.6  # typical speed of the random rotational flow, px per step
    motion_drift: float = 0.04  # relative change of the motion parameters per step
    growth_dbz: float = 0.6  # typical intensity tendency, dBZ per step
    growth_tau_minutes: float = 60.0
    dbz_per_sigma: float = 12.0
    rain_threshold: float = 10.0  # dBZ; weaker echoes are not rain
    zerovalue: float = 5.0  # dBZ written for no rain
    max_dbz: float = 62.0
    anisotropy: tuple[float, float] = (1.0, 1.0)  # length / width of the structures, drawn per sequence


# Weather the default parameters rarely draw, as changes to them (the "base" regime is the default).
REGIMES: dict[str, dict] = {
    "base": {},
    "slow": {"speed_px": (0.0, 1.0), "swirl_px": 0.2},  # up to 6 km per step, little swirl
    "fast": {"speed_px": (8.0, 15.0), "margin": 96},  # 48-90 km/h: a wider grid so inflow has somewhere to come from
    "stratiform": {  # widespread, smooth, weak, long-lived
        "beta": 3.6, "wet_fraction": (0.45, 0.75), "dbz_per_sigma": 6.0, "tau_minutes": 300.0,
        "growth_dbz": 0.2, "max_dbz": 48.0,
    },
    "convective": {  # scattered small intense cells that live minutes
        "beta": 2.4, "min_wavelength_km": 2.0, "wet_fraction": (0.05, 0.18), "dbz_per_sigma": 18.0,
        "tau_minutes": 40.0, "growth_dbz": 1.2,
    },
    "line": {"anisotropy": (3.0, 6.0), "wet_fraction": (0.15, 0.3), "dbz_per_sigma": 15.0},  # squall lines, bands
    "growth_decay": {"growth_dbz": 2.0, "growth_tau_minutes": 30.0},  # strong, persistent tendencies
}  # fmt: skip


def regime_params(regime: str, size: int = 128) -> RadarParams:
    if regime not in REGIMES:
        raise ValueError(f"unknown radar regime {regime!r}; one of {', '.join(REGIMES)}")
    return replace(RadarParams(size=size), **REGIMES[regime])


def _wavenumbers(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n)
    return np.hypot(*np.meshgrid(k, k, indexing="ij"))  # cycles per pixel


def _spectral_filter(
    n: int, beta: float, min_wavelength_px: float, stretch: float = 1.0, angle: float = 0.0
) -> np.ndarray:
    """Amplitude ~ k^(-beta/2) up to 1/min_wavelength; with ``stretch`` > 1 the wavenumber along
    ``angle`` counts ``stretch`` times, so structures are that much longer in that direction."""
    k = _wavenumbers(n)
    if stretch != 1.0:
        ky, kx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
        along, across = kx * np.cos(angle) + ky * np.sin(angle), -kx * np.sin(angle) + ky * np.cos(angle)
        k = np.hypot(stretch * along, across)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2)
    amp[0, 0] = 0.0
    amp[k > 1 / min_wavelength_px] = 0.0
    return amp / np.sqrt((amp**2).mean())  # filtered unit white noise then has unit variance


def _noise(rng: np.random.Generator, amp: np.ndarray) -> np.ndarray:
    """Gaussian field with the spectral amplitude ``amp`` (periodic), about unit variance."""
    return np.fft.ifft2(np.fft.fft2(rng.standard_normal(amp.shape)) * amp).real


def _advect(field: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    return ndimage.map_coordinates(field, coords, order=order, mode="grid-wrap")


class _Motion:
    """Translation + rotation + deformation about the centre + a random swirl; drifts slowly."""

    def __init__(self, rng: np.random.Generator, p: RadarParams, n: int) -> None:
        self.rng, self.p, self.n = rng, p, n
        speed = rng.uniform(*p.speed_px)
        angle = rng.uniform(0, 2 * np.pi)
        self.u = np.array([speed * np.sin(angle), speed * np.cos(angle)])  # (dy, dx) px per step
        self.omega = rng.uniform(-p.rotation_rad, p.rotation_rad)
        self.stretch = rng.uniform(-p.deformation, p.deformation, size=2)  # pure deformation, shear
        self.amp_psi = _spectral_filter(n, 5.0, n / 4)  # streamfunction: only the large scales
        self.psi = _noise(rng, self.amp_psi)
        yy, xx = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
        self.grid = np.stack([yy, xx])
        self.rel = self.grid - (n - 1) / 2

    def step(self) -> np.ndarray:
        """Drift the parameters one step; return the velocity field (2, n, n) in px per step."""
        p, rng = self.p, self.rng
        d = p.motion_drift
        self.u = self.u * (1 + d * rng.standard_normal()) + d * rng.standard_normal(2)
        self.omega += d * p.rotation_rad * rng.standard_normal()
        self.stretch = self.stretch + d * p.deformation * rng.standard_normal(2)
        rho = np.exp(-d)
        self.psi = rho * self.psi + np.sqrt(1 - rho**2) * _noise(rng, self.amp_psi)
        gy, gx = np.gradient(self.psi)
        norm = np.sqrt((gy**2 + gx**2).mean()) + 1e-12
        swirl = np.stack([gx, -gy]) / norm * p.swirl_px  # rotational: v = (dpsi/dx, -dpsi/dy)
        ry, rx = self.rel
        rot = self.omega * np.stack([rx, -ry])
        a, b = self.stretch
        deform = np.stack([-a * ry + b * rx, a * rx + b * ry])
        return self.u[:, None, None] + rot + deform + swirl


def generate_sequence(seed: int, n_frames: int, params: RadarParams | None = None) -> np.ndarray:
    """``n_frames`` consecutive radar frames (T, size, size) in dBZ, float32; no rain = zerovalue."""
    p = params or RadarParams()
    rng = np.random.default_rng(seed)
    n = p.size + 2 * p.margin
    stretch, angle = 1.0, 0.0
    if p.anisotropy != (1.0, 1.0):  # drawn only then: the default sequences stay what they were
        stretch, angle = rng.uniform(*p.anisotropy), rng.uniform(0, np.pi)
    amp = _spectral_filter(n, p.beta, p.min_wavelength_km / p.pixel_km, stretch, angle)
    k = _wavenumbers(n)
    wavelength_km = np.where(k > 0, p.pixel_km / np.maximum(k, 1e-9), np.inf)
    tau = p.tau_minutes * (wavelength_km / 32.0) ** p.tau_exponent
    rho = np.exp(-p.timestep_minutes / tau)  # per Fourier component
    innov = np.sqrt(1 - rho**2)
    amp_g = _spectral_filter(n, 4.0, 24 / p.pixel_km)
    rho_g = np.exp(-p.timestep_minutes / p.growth_tau_minutes)

    motion = _Motion(rng, p, n)
    s = _noise(rng, amp)  # rain structure, unit variance
    growth = _noise(rng, amp_g) * p.growth_dbz  # dBZ per step
    offset = np.zeros((n, n))  # accumulated growth, dBZ
    wet = rng.uniform(*p.wet_fraction)
    threshold = float(np.quantile(s, 1 - wet))  # fixed per sequence: the wet area changes with the weather

    frames = []
    c = slice(p.margin, p.margin + p.size)
    for t in range(p.spinup_steps + n_frames):
        if t >= p.spinup_steps:
            dbz = p.rain_threshold + p.dbz_per_sigma * (s - threshold) + offset
            dbz = np.where(s > threshold, np.clip(dbz, p.rain_threshold, p.max_dbz), p.zerovalue)
            frames.append(dbz[c, c])
        v = motion.step()
        coords = motion.grid - v  # backward: value at x came from x - v
        s = _advect(s, coords, order=3)  # cubic: the structure keeps its small scales
        s = np.fft.ifft2(np.fft.fft2(s) * rho + np.fft.fft2(rng.standard_normal((n, n))) * amp * innov).real
        s = (s - s.mean()) / (s.std() + 1e-12)
        growth = rho_g * _advect(growth, coords) + np.sqrt(1 - rho_g**2) * _noise(rng, amp_g) * p.growth_dbz
        offset = 0.95 * _advect(offset, coords) + growth  # relaxes: intensities do not run away
    return np.stack(frames).astype(np.float32)


def sequence_job(args: tuple[int, int, int, str]) -> np.ndarray:
    """generate_sequence(seed, n_frames) at ``size`` in a regime - a picklable job for worker processes."""
    seed, n_frames, size, regime = args
    return generate_sequence(seed, n_frames, regime_params(regime, size))


# ---------------------------------------------------------------------------------------------
# Real data: a folder of frames, one per time step, with the time in the file name or a manifest


TIME_PATTERNS = (
    (re.compile(r"(\d{8})[T_\-]?(\d{6})"), "%Y%m%d%H%M%S"),
    (re.compile(r"(\d{8})[T_\-]?(\d{4})(?!\d)"), "%Y%m%d%H%M"),
    (re.compile(r"(\d{12})(?!\d)"), "%Y%m%d%H%M"),
)


def time_from_name(name: str) -> datetime | None:
    """The first timestamp in a file name: YYYYMMDDHHMM(SS), optionally split by T, _ or -."""
    for pattern, fmt in TIME_PATTERNS:
        m = pattern.search(name)
        if m:
            try:
                return datetime.strptime("".join(m.groups()), fmt)
            except ValueError:
                continue
    return None


@dataclass
class FrameFolder:
    frames: np.ndarray  # (T, H, W) float32 dBZ, NaN = no data
    times: list[datetime]
    timestep_minutes: float


def load_frame_folder(root: str | Path, png_gain: float = OPERA_GAIN, png_offset: float = OPERA_OFFSET) -> FrameFolder:
    """Frames from ``root`` (``.npy``/``.npz``/``.png``/ODIM ``.h5``/NetCDF ``.nc``), one per file, ordered by time.

    Times come from ``manifest.json`` (``{"file name": "ISO time", ...}``) when present, else from
    the file names (YYYYMMDDHHMM), else from the files themselves (ODIM, NetCDF). Checks that all
    frames share one shape and that the time steps are even. PNG pixels v map to
    dBZ = png_gain * v + png_offset (255 = no data) - the service's scaling. mm/h files become dBZ
    with Marshall-Palmer.
    """
    from modelrepo.errors import InputError
    from modelrepo.radar import MARSHALL_PALMER, rate_to_dbz, time_order
    from modelrepo.radar_io import read_frames

    p = RadarParams()
    root = Path(root)
    suffixes = (".npy", ".npz", ".png", ".h5", ".hdf5", ".nc")
    files = [f for f in sorted(root.iterdir()) if f.suffix.lower() in suffixes]
    if not files:
        raise ValueError(f"no {'/'.join(suffixes)} frames in {root}")
    manifest = root / "manifest.json"
    stamps = (
        {k: datetime.fromisoformat(v) for k, v in json.loads(manifest.read_text()).items()} if manifest.exists() else {}
    )
    frames, times = [], []
    for f in files:
        radar = read_frames([(f.name, f.read_bytes())], input_unit="dBZ", png_gain=png_gain, png_offset=png_offset)
        if len(radar.frames) != 1:
            raise ValueError(f"{f.name} holds {len(radar.frames)} frames; put one frame in each file")
        frame = radar.frames[0]
        if radar.units[0] == "mm/h":
            frame = rate_to_dbz(frame, *MARSHALL_PALMER, p.zerovalue, p.rain_threshold)
        frames.append(frame)
        times.append(stamps.get(f.name) or time_from_name(f.name) or radar.times[0])
    missing = [f.name for f, t in zip(files, times) if t is None]
    if missing:
        raise ValueError(f"no time for {missing[:3]}: put YYYYMMDDHHMM in the names or add manifest.json")
    try:
        order, step = time_order(times)  # the service's own check
    except InputError as exc:
        raise ValueError(f"{root}: {exc.message}") from None
    frames, times = [frames[i] for i in order], [times[i] for i in order]
    shapes = {fr.shape for fr in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames differ in shape: {sorted(shapes)}")
    return FrameFolder(np.stack(frames).astype(np.float32), times, step if step is not None else float("nan"))
