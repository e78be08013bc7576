"""A trained nowcaster's card and ONNX export into the model repository (the training is in
``training/tasks/nowcast.py``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from modelrepo.card import Architecture, CardDraft, DataProvenance, InputSpec, OutputSpec, RadarSpec
from modelrepo.radar import to_network
from training.data.radar import REGIMES, RadarParams
from training.export import export_to_repository
from training.tasks.nowcast import ARCHS, ONE_APPLICATION, NowcastConfig, pad_multiple, regimes


def card_metrics(verification: dict, model: str) -> dict[str, float]:
    """Flat metrics for the card (``make eval`` re-measures them): MAE, CSI and FSS at 30 and 60 min."""
    s, leads = verification["methods"][model], verification["lead_minutes"]
    out = {}
    for minutes in (30, 60):
        if minutes in leads:
            i = leads.index(minutes)
            out |= {f"{k}_{minutes}min": v[i] for k, v in s.items() if v[i] is not None}
    return out


def nowcaster_input_spec(cfg: NowcastConfig, spec: RadarSpec) -> InputSpec:
    """Frames as channels, any size padded to the network's multiple (scaling: the card's radar block)."""
    return InputSpec(
        name="input",
        color_mode=None,
        channels=spec.frames_in,
        height="any",
        width="any",
        mean=[0.0] * spec.frames_in,
        std=[1.0] * spec.frames_in,
        resize="none",
        pad_multiple=pad_multiple(cfg),
    )


def loss_description(cfg: NowcastConfig) -> str:
    """The card's words for the training loss."""
    return (
        f"MAE on the network scale, weighted 1 + {cfg.heavy_weight} * target, over the rolled-out "
        f"steps ({cfg.rollout_start} growing to {cfg.rollout} applications)"
        + (f", lead k weighted k ** -{cfg.lead_power} (mean 1)" if cfg.lead_power and not cfg.relative else "")
        + (
            f", per sequence and lead divided by plain extrapolation's (in-graph LK; floor "
            f"{cfg.relative_floor_dbz} dBZ)"
            if cfg.relative
            else ""
        )
        + (", only where the Lucas-Kanade extrapolation's trajectory starts inside the grid" if cfg.mask_inflow else "")
        + (", on the forecast as served (below the rain threshold: no rain)" if cfg.served_loss else "")
        + (f", + {cfg.csi_weight} x (1 - soft CSI at 20/30/40 dBZ, tau {cfg.csi_tau} dBZ)" if cfg.csi_weight else "")
    )


def nowcaster_card(
    model: torch.nn.Module, cfg: NowcastConfig, spec: RadarSpec, verification: dict, n_test: int
) -> CardDraft:
    summary = {k: v for k, v in verification.items() if k != "boundary_short"}
    return CardDraft(
        name=cfg.name,
        task="nowcasting",
        description=f"Radar precipitation nowcaster: {ARCHS[cfg.arch][1]}; "
        + (
            "one application is the hour. "
            if cfg.arch in ONE_APPLICATION
            else "rolled out autoregressively to 60 min. "
        )
        + "Baselines: persistence and pysteps Lucas-Kanade extrapolation.",
        architecture=Architecture(
            name=ARCHS[cfg.arch][0],
            family="convlstm" if cfg.arch == "convlstm" else "unet",
            preset="any-size",
            kwargs=dict(model.config)
            | {
                "unet": {"residual": "last input frame"},
                "lagrangian": {"advection": "semi-Lagrangian"},
                "convlstm": {"recurrence": "encoder-forecaster ConvLSTM", "residual": "last input frame"},
            }[cfg.arch],
            num_parameters=sum(p.numel() for p in model.parameters()),
        ),
        input=nowcaster_input_spec(cfg, spec),
        output=OutputSpec(name="forecast", kind="frames", shape=[spec.frames_out, "any", "any"]),
        training=DataProvenance(
            source="generated:radar" if cfg.data == "generated" else f"folder:{cfg.data_dir}",
            description="training.data.radar generator (power-law rain fields, scale-dependent Lagrangian "
            "evolution, growth/decay trends, varying translation/rotation/deformation/swirl) "
            + json.dumps(asdict(RadarParams()))
            + "".join(f"; regime {r}: {json.dumps(REGIMES[r])}" for r in regimes(cfg.train_regimes) if r != "base"),
            split={},
            sizes={"train": int(cfg.n_train), "val": int(cfg.n_val), "test": n_test},
            seed=cfg.seed,
            augmentation={"crop": cfg.crop, "rot90": True, "flip": True},
        ),
        hyperparameters=asdict(cfg) | {"loss": loss_description(cfg)},
        metrics=card_metrics(verification, cfg.name),
        radar=spec,
        verification=summary,
    )


def export_nowcaster(
    model: torch.nn.Module,
    cfg: NowcastConfig,
    spec: RadarSpec,
    verification: dict,
    test: np.ndarray,
    export_to: Path,
    version: int | None,
    overwrite: bool,
) -> Path:
    """Parity on two held-out sequences, another size, and (Lagrangian: instead of random noise, whose
    optical flow is ill-conditioned - float32 rounding in a sample position times the noise's gradient
    exceeds the tolerance, while real radar agrees to ~1e-5) three more held-out sequences."""
    model = model.cpu().eval()
    card_fields = nowcaster_card(model, cfg, spec, verification, len(test))
    real = to_network(test[:2, : spec.frames_in], spec)
    odd = to_network(test[-1:, : spec.frames_in, :72, :56], spec)  # another size (multiples of 8)
    flow = cfg.arch == "lagrangian"
    extra = [odd] + ([to_network(test[2:5, : spec.frames_in], spec)] if flow and len(test) > 2 else [])
    card = export_to_repository(
        model, card_fields, export_to, real, version=version, overwrite=overwrite, max_batch_size=8,
        dynamic_spatial=True, extra_inputs=extra, output_name="forecast", random_check=not flow,
    )  # fmt: skip
    return export_to / card.name
