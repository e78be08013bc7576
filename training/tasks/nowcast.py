"""The radar nowcaster: training with rolled-out steps (on the shared loop) and export; the baselines
and the verification are in ``training/tasks/nowcast_verify.py``."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from modelrepo.card import RadarSpec
from modelrepo.radar import to_network
from training.data.radar import REGIMES, RadarParams, load_frame_folder, sequence_job
from training.loop import LoopConfig, Run, fit_task, pick_device
from training.nets.convlstm import ConvLSTMNowcaster
from training.nets.flow import CONF_POWER, TIKHONOV, WINDOW_PX, extrapolate, lucas_kanade, trajectories_inside
from training.nets.lagrangian import LagrangianNowcaster
from training.nets.nowcaster import Nowcaster, rollout
from training.tasks.nowcast_losses import CSI_THRESHOLDS_DBZ, as_served, relative_mae, soft_csi_loss, weighted_mae
from training.tasks.nowcast_verify import forecast_lk, verify_methods, verify_regimes, write_reports

LEADS = 10  # verified steps: 60 minutes
TEST_SEED0 = 1_000_000  # test sequences: other seeds than training (0..) and validation (500_000..)
VAL_SEED0 = 500_000


@dataclass
class NowcastConfig:
    name: str = "unet_nowcast"
    data: str = "generated"  # generated | folder (a folder of frames at --data-dir)
    data_dir: str | None = None
    n_train: int = 800  # generated training sequences
    n_val: int = 16
    n_test: int = 40
    train_size: int = 96  # grid of the generated training sequences (px = km)
    crop: int = 64  # random training crop (rotated / flipped)
    test_size: int = 128
    rollout: int = 3  # applications trained through: rollout * 2 steps (3 -> 36 min)
    # a curriculum: start with rollout_start applications, grow to rollout over the first rollout_ramp
    # of the steps. Tried: 2 -> 5 (to 60 min) over 5,000 steps - worse MAE beyond 30 min (README).
    rollout_start: int = 3
    rollout_ramp: float = 0.4
    # unet (changes to the latest frame) | lagrangian (optical flow + learned motion correction, advection,
    # learned growth/decay) | convlstm (the lecture's encoder-forecaster ConvLSTM); lagrangian and convlstm
    # forecast all 10 steps in one application, so --rollout 1
    arch: str = "unet"
    max_disp: float = 2.0  # lagrangian: the largest learned correction to the optical flow (px per 6-minute step)
    # lagrangian: growth and decay learned along the motion (lagrangian) or where the forecast stands (eulerian)
    evolution: str = "lagrangian"
    # lagrangian: the in-graph optical flow's final confidence-weighted smoothing (px). 16 instead of 8 made
    # the committed model's 60-min MAE 1.5-5 % lower in every regime (validation, 2026-12-05)
    flow_smooth: float = 8.0
    # lagrangian: the in-graph flow's Tikhonov term and least-squares window (px at every pyramid level).
    # 1e-3 and 12 instead of 1e-5 and 8: plain extrapolation along the flow 1-3 % lower MAE at 6-60 min,
    # mean over the regimes' validation sequences, most in `line` and `convective` (2026-12-07)
    flow_reg: float = TIKHONOV
    flow_window: float = WINDOW_PX
    flow_conf_power: float = CONF_POWER  # lagrangian: the flow's fill-in confidence to this power (1: earlier cards)
    base: int = 16
    depth: int = 3
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    heavy_weight: float = 2.0  # loss weight per pixel: 1 + heavy_weight * target (network scale)
    # + csi_weight x (1 - soft CSI) at 20, 30 and 40 dBZ (a sigmoid of csi_tau dBZ in place of the threshold):
    # an average error alone rewards softening heavy cores whose future is uncertain, CSI rewards keeping them
    csi_weight: float = 0.0
    csi_tau: float = 2.0
    # each lead's error weighted lead ** -lead_power (mean 1 over the leads): errors grow with lead (LK's
    # MAE triples from 6 to 60 min), so 0.5 weighs each lead's relative error about alike instead of
    # letting the hour's large errors drown the first steps
    lead_power: float = 0.0
    # each sequence's weighted error at each lead divided by that of plain extrapolation along the in-graph
    # Lucas-Kanade flow (no gradient; floor relative_floor_dbz): the error relative to extrapolation, so each
    # sequence (regime) and each lead counts alike - the target is to beat extrapolation in every one
    relative: bool = False
    relative_floor_dbz: float = 0.25
    # the loss only where the Lucas-Kanade extrapolation's trajectory starts inside the grid (the pixels
    # the verification scores); elsewhere echoes flow in from outside and nothing can forecast them
    mask_inflow: bool = False
    # the loss sees the forecast as served: below the rain threshold is no rain (straight-through gradient).
    # Without it the Lagrangian model hedged at rain edges with sub-threshold values that are served as
    # no rain: its misses at 6 min were 1.5 x plain extrapolation's (validation, fast and growth_decay)
    served_loss: bool = False
    # after training, choose where the served forecast turns from no rain to rain on validation sequences
    # (training.nowcast_calibrate): a value just below the rain threshold is usually rain at the threshold
    calibrate_rain: bool = False
    # lagrangian, with calibrate_rain: first choose the in-graph flow's smoothing and a factor on the evolution
    # network's changes on the same validation sequences (training.nowcast_calibrate; on the committed model
    # validation liked 0.7 of its changes and the held-out sets did not - README, 2026-12-06)
    calibrate_evolution: bool = False
    seed: int = 0
    workers: int = 2  # processes generating sequences
    device: str = "auto"
    out: str = "runs"
    # generated training data: comma-separated regimes of training.data.radar.REGIMES, taken in turn
    # (``all``: every regime); the default is the base generator alone
    train_regimes: str = "base"
    lk: bool = True  # pysteps Lucas-Kanade extrapolation baseline
    compare: str = ""  # comma-separated committed nowcasters (model folders) verified beside this one
    n_regime_test: int = 12  # held-out sequences per regime (generated data), verified regime by regime

    # not part of the resume key: how many processes generate the (seeded) sequences, what is verified,
    # and the name (a trial run in runs/<trial> can be copied to runs/<name> and exported under it)
    RUN_ONLY: ClassVar[tuple[str, ...]] = (
        "name",
        "workers",
        "lk",
        "compare",
        "n_regime_test",
        "calibrate_rain",
        "calibrate_evolution",
    )


def config_from_card(card) -> NowcastConfig:
    """The run's config from a committed nowcaster's card (its hyperparameters; fields added since: defaults)."""
    known = {f.name for f in fields(NowcastConfig)}
    return NowcastConfig(**{k: v for k, v in card.hyperparameters.items() if k in known})


def radar_spec(cfg: NowcastConfig, timestep: float = 6.0) -> RadarSpec:
    p = RadarParams()
    return RadarSpec(
        frames_in=3,
        frames_out=LEADS if cfg.arch in ONE_APPLICATION else 2,
        timestep_minutes=timestep,
        max_steps=LEADS,
        zerovalue=p.zerovalue,
        rain_threshold=p.rain_threshold,
        pixel_km=p.pixel_km,
    )


ONE_APPLICATION = ("lagrangian", "convlstm")  # archs that forecast all LEADS steps at once


def regimes(names: str) -> list[str]:
    """``base,fast`` -> ["base", "fast"]; ``all`` -> every regime."""
    out = list(REGIMES) if names == "all" else [r.strip() for r in names.split(",") if r.strip()]
    unknown = [r for r in out if r not in REGIMES]
    if unknown or not out:
        raise ValueError(f"unknown radar regime(s) {unknown or names!r}; choose among {', '.join(REGIMES)} or all")
    return out


def generated(
    seeds: range,
    n_frames: int,
    size: int,
    workers: int,
    desc: str,
    regime_names: tuple[str, ...] | list[str] = ("base",),
) -> np.ndarray:
    """(N, T, size, size) dBZ from ``workers`` processes, with a progress bar; sequence i is drawn in
    regime ``regime_names[i % len]``.

    Worker processes are spawned, not forked: a fork of a process that already runs threads (ONNX
    Runtime, a server under test) can inherit a held lock and hang."""
    jobs = [(s, n_frames, size, regime_names[i % len(regime_names)]) for i, s in enumerate(seeds)]
    if workers <= 1:
        return np.stack([sequence_job(j) for j in tqdm(jobs, desc=desc, leave=False)])
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return np.stack(list(tqdm(pool.imap(sequence_job, jobs, chunksize=4), total=len(jobs), desc=desc, leave=False)))


def windows(frames: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """Overlapping sequences (N, length, H, W) from one long series (T, H, W)."""
    return np.stack([frames[i : i + length] for i in range(0, len(frames) - length + 1, stride)])


def datasets(cfg: NowcastConfig, spec: RadarSpec) -> dict[str, np.ndarray]:
    """dBZ sequences: train/val with 3 + 2 * rollout frames, test with 3 + LEADS frames."""
    n_train_frames = spec.frames_in + spec.frames_out * cfg.rollout
    n_test_frames = spec.frames_in + LEADS
    if cfg.data == "folder":
        if not cfg.data_dir:
            raise ValueError("--data folder needs --data-dir")
        series = load_frame_folder(cfg.data_dir)
        if abs(series.timestep_minutes - spec.timestep_minutes) > 1e-6:
            raise ValueError(f"frames are {series.timestep_minutes} min apart; the model uses {spec.timestep_minutes}")
        f = np.nan_to_num(series.frames, nan=spec.zerovalue)
        cut = int(0.8 * len(f))  # the last 20 % of the time series is held out
        return {
            "train": windows(f[:cut], n_train_frames),
            "val": windows(f[:cut], n_train_frames, stride=n_train_frames)[-cfg.n_val :],
            "test": windows(f[cut:], n_test_frames, stride=2),
        }
    mix = regimes(cfg.train_regimes)
    seeds = range(cfg.seed, cfg.seed + cfg.n_train)
    return {
        "train": generated(seeds, n_train_frames, cfg.train_size, cfg.workers, "train", mix),
        "val": generated(
            range(VAL_SEED0, VAL_SEED0 + cfg.n_val), n_train_frames, cfg.train_size, cfg.workers, "val", mix
        ),
        "test": generated(
            range(TEST_SEED0, TEST_SEED0 + cfg.n_test), n_test_frames, cfg.test_size, cfg.workers, "test"
        ),
    }


def validation_regime(
    regime: str, spec: RadarSpec, n: int, size: int, desc: str = "validation"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` validation sequences of one regime (seeds VAL_SEED0 + 97 k: never the test or regime test seeds),
    split into observed frames and the ``max_steps`` to forecast, with pysteps' LK forecast (NaN where
    echoes flow in - the pixels the verification skips): (obs, truth, lk), dBZ."""
    seqs = generated(range(VAL_SEED0, VAL_SEED0 + 97 * n, 97), spec.frames_in + spec.max_steps, size, 1,
                     f"{desc} {regime}", (regime,))  # fmt: skip
    obs, truth = seqs[:, : spec.frames_in], seqs[:, spec.frames_in :]
    return obs, truth, forecast_lk(obs, spec.max_steps, spec)


REGIME_SEED0 = 2_000_000  # held-out regime sequences: regime k uses seeds REGIME_SEED0 + 10,000 k + i


def regime_tests(cfg: NowcastConfig, spec: RadarSpec) -> dict[str, np.ndarray]:
    """Held-out sequences per regime other than the base one (whose test split is ``datasets``' test)."""
    if cfg.data != "generated" or cfg.n_regime_test <= 0:
        return {}
    frames = spec.frames_in + LEADS
    return {
        r: generated(range(REGIME_SEED0 + 10_000 * k, REGIME_SEED0 + 10_000 * k + cfg.n_regime_test), frames,
                     cfg.test_size, cfg.workers, f"test {r}", [r])
        for k, r in enumerate(REGIMES) if r != "base"
    }  # fmt: skip


def _batch(data: np.ndarray, rng: np.random.Generator, n: int, crop: int) -> torch.Tensor:
    """Random sequences, each cropped, rotated by k * 90 degrees and maybe flipped (all frames alike)."""
    out = []
    for i in rng.integers(0, len(data), n):
        seq = data[i]
        h, w = seq.shape[1:]
        c = min(crop, h, w)
        y, x = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        s = np.rot90(seq[:, y : y + c, x : x + c], k=int(rng.integers(4)), axes=(1, 2))
        out.append(s[:, :, ::-1] if rng.random() < 0.5 else s)
    return torch.from_numpy(np.ascontiguousarray(np.stack(out), dtype=np.float32))


def rollout_at(cfg: NowcastConfig, step: int) -> int:
    """Applications trained through at ``step``: rollout_start, growing to rollout over the ramp."""
    start = min(cfg.rollout_start, cfg.rollout)
    ramp = max(1, int(cfg.rollout_ramp * cfg.steps))
    return min(cfg.rollout, start + (cfg.rollout - start + 1) * step // ramp)


def nowcast_loss(cfg: NowcastConfig, m: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The weighted MAE of the rollout over the target's steps (where extrapolation reaches, with
    mask_inflow) - or, with ``relative``, that error relative to plain extrapolation's per sequence and
    lead - plus ``csi_weight`` x the soft-CSI loss at 20/30/40 dBZ."""
    steps = target.shape[1]
    mask = trajectories_inside(x, steps).to(target.dtype) if cfg.mask_inflow else None
    pred = rollout(m, x, steps)
    spec = radar_spec(cfg)
    if cfg.served_loss:
        pred = as_served(pred, spec.net_value(spec.rain_threshold))
    if cfg.relative:
        with torch.no_grad():
            flow = lucas_kanade(
                x, window=cfg.flow_window, reg=cfg.flow_reg, smooth=cfg.flow_smooth, conf_power=cfg.flow_conf_power
            )
            reference = torch.cat(extrapolate(x[:, -1:], flow, steps), dim=1)
        floor = cfg.relative_floor_dbz / spec.scale_dbz
        loss = relative_mae(pred, target, reference, cfg.heavy_weight, mask, floor)
    else:
        loss = weighted_mae(pred, target, cfg.heavy_weight, mask, cfg.lead_power)
    if cfg.csi_weight > 0:
        thresholds = tuple(spec.net_value(d) for d in CSI_THRESHOLDS_DBZ)
        loss = loss + cfg.csi_weight * soft_csi_loss(pred, target, thresholds, cfg.csi_tau / spec.scale_dbz, mask)
    return loss


EVALS = 10  # validation points over a run: the loop's "epochs" are cfg.steps / EVALS steps each


def _batches(cfg: NowcastConfig, train: np.ndarray, spec: RadarSpec, per_epoch: int):
    """The loop's batches: random crops; the target covers the rollout the curriculum is at."""

    def batches(epoch: int, rng: np.random.Generator):
        for i in range(per_epoch):
            seq = _batch(train, rng, cfg.batch_size, cfg.crop)
            k = rollout_at(cfg, epoch * per_epoch + i) * spec.frames_out  # steps trained through now
            yield seq[:, : spec.frames_in], seq[:, spec.frames_in : spec.frames_in + k]

    return batches


ARCHS = {  # arch -> (card name, what the card says the network does)
    "unet": ("nowcaster_unet", "a U-Net takes the last 3 reflectivity frames (6-minute steps) and predicts the "
             "next 2 as changes to the latest"),
    "lagrangian": ("nowcaster_lagrangian", "dense Lucas-Kanade optical flow of the last 3 reflectivity frames (in "
                   "the graph) plus a motion U-Net's correction gives the motion, the latest frame is advected along "
                   "it (semi-Lagrangian, GridSample) for all 10 steps (60 minutes), and an evolution U-Net adds "
                   "growth and decay"),
    "convlstm": ("nowcaster_convlstm", "an encoder-forecaster ConvLSTM (Shi et al. 2015) reads the last 3 reflectivity "
                 "frames at a quarter of the resolution and forecasts all 10 steps (60 minutes) in one application"),
}  # fmt: skip


def pad_multiple(cfg: NowcastConfig) -> int:
    return ConvLSTMNowcaster.pad_multiple if cfg.arch == "convlstm" else 2**cfg.depth


def build_nowcaster(cfg: NowcastConfig, spec: RadarSpec) -> torch.nn.Module:
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown nowcaster arch {cfg.arch!r}; one of {sorted(ARCHS)}")
    if cfg.arch in ONE_APPLICATION and spec.frames_out * cfg.rollout > LEADS:
        raise ValueError(f"{cfg.arch} forecasts all {LEADS} steps in one application: use --rollout 1")
    if cfg.arch == "lagrangian":
        return LagrangianNowcaster(
            spec.frames_in,
            spec.frames_out,
            cfg.base,
            cfg.depth,
            cfg.max_disp,
            evolution=cfg.evolution,
            flow_smooth=cfg.flow_smooth,
            flow_reg=cfg.flow_reg,
            flow_window=cfg.flow_window,
            flow_conf_power=cfg.flow_conf_power,
        )
    if cfg.arch == "convlstm":
        return ConvLSTMNowcaster(spec.frames_in, spec.frames_out, hidden=3 * cfg.base)
    return Nowcaster(spec.frames_in, spec.frames_out, cfg.base, cfg.depth)


def verify_all(cfg: NowcastConfig, model: torch.nn.Module, spec: RadarSpec, test: np.ndarray, device) -> tuple:
    """Every method on the test split and, for generated data, on each weather regime's sequences."""
    verification, forecasts = verify_methods(cfg, model, spec, test, device)
    sets = regime_tests(cfg, spec)
    if sets:
        verification["by_regime"] = verify_regimes(cfg, model, spec, (test, forecasts), sets, device)
    return verification, forecasts


def train_nowcaster(
    cfg: NowcastConfig,
    run: Run = Run(),
) -> dict:
    """Train on the shared loop (the weights with the best validation loss are kept), verify every
    method on the held-out sequences, plot, optionally export."""
    device = pick_device(cfg.device)
    spec = radar_spec(cfg)
    t_data = time.time()
    data = datasets(cfg, spec)
    train = to_network(data["train"], spec).astype(np.float16)  # network scale, half the memory
    v = torch.from_numpy(to_network(data["val"], spec)).to(device)
    data_seconds = time.time() - t_data
    model = build_nowcaster(cfg, spec)

    @torch.no_grad()
    def val_loss(m: torch.nn.Module) -> float:
        m.eval()
        return nowcast_loss(cfg, m, v[:, : spec.frames_in], v[:, spec.frames_in :]).item()

    per_epoch = -(-cfg.steps // EVALS)
    epochs = -(-cfg.steps // per_epoch)
    loop = LoopConfig(epochs, cfg.lr, 1e-4, patience=epochs, ema=None, seed=cfg.seed, device=cfg.device)
    first = {"step": 0, "train_loss": None, "val_loss": val_loss(model.to(device))}
    fr, out_dir = fit_task(
        model, cfg, cfg.name, loop, per_epoch, _batches(cfg, train, spec, per_epoch),
        lambda m, x, target: nowcast_loss(cfg, m, x, target),
        lambda m: (-(vl := val_loss(m)), vl), {"model_args": model.config}, run,
    )  # fmt: skip
    history = [first] + [
        {"step": (h["epoch"] + 1) * per_epoch, "train_loss": h["train_loss"], "val_loss": h["val_loss"]}
        for h in fr.history
    ]
    torch.save(
        {"model_args": model.config, "config": asdict(cfg), "state_dict": model.state_dict()}, out_dir / "model.pt"
    )
    from training.nowcast_calibrate import calibrate_and_verify

    spec, verification, forecasts = calibrate_and_verify(cfg, model, spec, data["test"], device, out_dir)
    write_reports(verification, forecasts, history, data["test"], spec, out_dir)
    result = {
        "name": cfg.name,
        "verification": verification,
        "history": history,
        "out_dir": str(out_dir),
        "scores_plot": str(out_dir / "scores.png"),
        "case_plot": str(out_dir / "case.png"),
        "regimes_plot": str(out_dir / "regimes.png") if "by_regime" in verification else None,
        "train_seconds": round(fr.train_seconds, 1),
        "data_seconds": round(data_seconds, 1),
    }
    if run.export_to is not None:
        from training.tasks.nowcast_export import export_nowcaster

        test = data["test"]
        result["exported"] = str(
            export_nowcaster(model, cfg, spec, verification, test, run.export_to, run.version, run.overwrite)
        )
    return result
