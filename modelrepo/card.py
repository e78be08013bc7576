"""Pydantic schema of a model card (``models/<name>/card.json``).

The card holds everything a server needs to pre- and post-process a model's tensors, so that
no preprocessing is written twice: training and serving both read it through ``preprocess``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CARD_SCHEMA_VERSION = 1

Task = Literal["classification", "segmentation", "denoising", "nowcasting"]
Dim = int | Literal["any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainCheck(_Strict):
    """A framed upload far from the training digits' principal subspace is flagged as out of domain."""

    mean: list[float] = Field(description="mean framed grid of the training images, flattened")
    components: list[list[float]] = Field(description="orthonormal principal directions, one per row")
    threshold: float = Field(gt=0, description="residual norm above which an upload is unlike the training data")
    quantile: float = Field(description="the share of held-out training-like uploads below the threshold")


class Framing(_Strict):
    """How the training images were framed, so that every upload is framed the same way
    (``modelrepo/framing.py``): ink box scaled (aspect kept) to ``fit`` of ``grid`` cells, drawn at
    ``grid * supersample`` px, centred by mass, block-averaged to the grid; then the input spec's
    resize takes the grid to the network's size. UCI digits: 32 x 32 bitmaps in 4 x 4 blocks."""

    polarity: Literal["light_on_dark", "dark_on_light"] = Field(
        "light_on_dark", description="the training images' ink and background; uploads are inverted to match"
    )
    grid: int = Field(8, ge=2)
    fit: int = Field(8, ge=1)
    supersample: int = Field(4, ge=1)
    center: Literal["mass", "box"] = "mass"
    # ink thinner than this (px on the grid x supersample canvas) is thickened to it: a thin pen on a
    # large canvas shrinks to a hairline once framed, unlike the training digits' pen strokes
    min_stroke: float = Field(0.0, ge=0)
    domain: DomainCheck | None = None

    @model_validator(mode="after")
    def _check(self) -> Framing:
        if self.fit > self.grid:
            raise ValueError("fit cannot exceed grid")
        if self.domain is not None and any(len(c) != self.grid**2 for c in [self.domain.mean, *self.domain.components]):
            raise ValueError("the domain check's vectors need grid x grid values")
        return self


class InputSpec(_Strict):
    """How raw images become the network's input tensor."""

    name: str = "input"
    layout: Literal["NCHW"] = "NCHW"
    # None: not an image (radar frames as channels; their scaling is in the card's ``radar`` block)
    color_mode: Literal["L", "RGB"] | None = Field(description="PIL mode images are converted to")
    channels: int = Field(gt=0)
    height: Dim
    width: Dim
    dtype: Literal["float32"] = "float32"
    # Pixel values are first scaled from [0, 2^bits - 1] to this range, then normalised by mean/std.
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: list[float]
    std: list[float]
    resize: Literal["stretch", "shorter_side_center_crop", "none"] = Field(
        description="stretch: resize to height x width; shorter_side_center_crop: scale the shorter "
        "side to size/crop_fraction, then crop the centre; none: any size is fed as is"
    )
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    crop_fraction: float = Field(default=0.875, gt=0, le=1)
    # range: 8-bit pixels scaled to value_range. percentile: the image's own intensities (8, 16 or
    # 32 bit, never squashed to 8 bits) mapped so that percentiles (pmin, pmax) of the *whole
    # image* become 0 and 1 - how microscopy images are normalised (CSBDeep, StarDist, cellpose).
    normalization: Literal["range", "percentile"] = "range"
    percentiles: tuple[float, float] = (1.0, 99.8)
    # any-size networks: pad (reflecting the image) to a multiple of this before inference, crop after
    pad_multiple: int = Field(default=1, ge=1)
    # denoisers: one more input channel after the image's, filled with sigma / 255 at every pixel
    noise_level_channel: bool = False
    # any-size networks: the geometric self-ensemble served by default - the network runs on 1, 2, 4 or 8
    # flipped / rotated copies and the answers are turned back and averaged (modelrepo.ensemble)
    ensemble: Literal[1, 2, 4, 8] = 1
    # denoisers, blind: the level used is the wavelet estimate or, if lower, the noise the network itself removes
    # from sample tiles at that estimate divided by this share (modelrepo.denoising.blind_level; chosen on
    # training images, training.denoise_refine)
    noise_refine: float | None = Field(default=None, gt=0.5, le=1.5)
    # digit-like classifiers: find the ink, fix polarity and alpha, crop, scale and centre it first
    framing: Framing | None = None

    @property
    def tensor_channels(self) -> int:
        """Channels of the network's input tensor: the image's, plus the noise-level map if any."""
        return self.channels + int(self.noise_level_channel)

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.color_mode == "L" and self.channels != 1 or self.color_mode == "RGB" and self.channels != 3:
            raise ValueError(f"color_mode {self.color_mode} does not give {self.channels} channels")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")
        if not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError("percentiles must satisfy 0 <= pmin < pmax <= 100")
        if self.normalization == "percentile" and (self.color_mode != "L" or self.resize != "none"):
            raise ValueError("percentile normalisation is for single-channel images fed at their own size")
        if self.framing is not None and (self.color_mode != "L" or self.normalization != "range"):
            raise ValueError("framing is for gray images normalised by range")
        fixed = isinstance(self.height, int) and isinstance(self.width, int)
        if self.resize != "none" and not fixed:
            raise ValueError(f"resize={self.resize} needs a fixed height and width")
        if self.ensemble > 1 and self.resize != "none":
            raise ValueError("a self-ensemble is for any-size networks fed at the image's own size")
        if self.noise_refine is not None and not self.noise_level_channel:
            raise ValueError("noise_refine is for denoisers with a noise-level channel")
        return self


class OutputSpec(_Strict):
    name: str = "logits"
    kind: Literal["logits", "probabilities", "class_scores", "image", "frames"]
    shape: list[Dim] = Field(description="shape without the batch axis")
    postprocess: Literal["softmax", "argmax", "none"] = "none"
    # segmentation: which label is the object interior and which the border between touching objects
    object_class: int | None = None
    border_class: int | None = None
    min_object_size: int = Field(0, ge=0, description="default smallest object kept, in pixels")
    # segmentation: how objects are made from the class probabilities (modelrepo/segmentation.py)
    instances: Literal["components", "watershed", "distance"] = "components"
    # segmentation: the output channel (after the classes) holding a learned distance to the cell's own edge, as a
    # logit (sigmoid: 0 at the edge, 1 at the centre); ``instances = "distance"`` grows its cores into the cells
    distance_channel: int | None = Field(None, ge=1)
    distance_core: float = Field(0.5, gt=0, lt=1, description="distance above which a pixel is a cell's core")
    # segmentation: object sizes trained on (equivalent diameters, px); uploads with cells outside the
    # range are rescaled, and the answer is mapped back
    diameter_px: float | None = Field(None, gt=0)
    diameter_range: tuple[float, float] | None = None
    # segmentation: cells measuring within this range are segmented at their own size, others rescaled to
    # its nearer end (chosen on validation: training.seg_calibrate); absent: rescaled to diameter_px
    diameter_native: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check_distance(self) -> OutputSpec:
        if self.instances == "distance" and self.distance_channel is None:
            raise ValueError('instances "distance" needs a distance_channel')
        return self

    @property
    def class_channels(self) -> int | None:
        """How many leading channels are class scores (None: all of them)."""
        return self.distance_channel


class RadarSpec(_Strict):
    """Nowcasters: frames in and out, time step, and how dBZ become the network's values."""

    frames_in: int = Field(3, ge=1)
    frames_out: int = Field(2, ge=1)
    timestep_minutes: float = Field(6.0, gt=0)
    max_steps: int = Field(10, ge=1, description="longest rollout verified (steps of timestep_minutes)")
    timestep_range_minutes: tuple[float, float] | None = Field(
        None,
        description="other frame spacings (whole minutes within this range) the model was verified at: it "
        "measures motion from the frames themselves and forecasts in their own step (training.nowcast_timesteps)",
    )
    zerovalue: float = Field(5.0, description="dBZ standing for no rain (and, inside the network, no data)")
    rain_threshold: float = Field(10.0, description="dBZ; weaker values are no rain")
    rain_decision_dbz: float | None = Field(
        None,
        description="a forecast value at or above this is served as rain (at least rain_threshold), below it as no "
        "rain; None: the rain threshold itself. Chosen on validation sequences (training.nowcast_calibrate)",
    )
    scale_dbz: float = Field(50.0, gt=0, description="network value = (dBZ - zerovalue) / scale_dbz")
    max_dbz: float = 70.0
    pixel_km: float = Field(1.0, gt=0, description="grid spacing the model was trained on")
    zr_a: float = Field(200.0, gt=0, description="default Z-R relation Z = a R^b (Marshall-Palmer)")
    zr_b: float = Field(1.6, gt=0)

    @property
    def decision_dbz(self) -> float:
        """Where a forecast turns from no rain to rain (``rain_decision_dbz``, else the rain threshold)."""
        return self.rain_threshold if self.rain_decision_dbz is None else self.rain_decision_dbz

    def net_value(self, dbz: Any) -> Any:
        """dBZ (a float or an array) -> the network's scale: (dBZ - zerovalue) / scale_dbz."""
        return (dbz - self.zerovalue) / self.scale_dbz

    @model_validator(mode="after")
    def _check(self) -> RadarSpec:
        if not self.zerovalue < self.rain_threshold < self.max_dbz:
            raise ValueError("need zerovalue < rain_threshold < max_dbz")
        if not self.zerovalue < self.decision_dbz <= self.rain_threshold:
            raise ValueError("need zerovalue < rain_decision_dbz <= rain_threshold")
        return self


class Architecture(_Strict):
    name: str
    family: str
    preset: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    num_parameters: int = Field(ge=0)


class DataProvenance(_Strict):
    source: str
    description: str = ""
    split: dict[str, float] = Field(description="fractions per split, e.g. train/val/test")
    sizes: dict[str, int]
    seed: int
    augmentation: dict[str, Any] = Field(default_factory=dict, description="train-time augmentation; {} if none")
    images: dict[str, Any] = Field(
        default_factory=dict, description="where the training, validation and test images come from, by name"
    )


class ExportInfo(_Strict):
    exporter: str
    torch_version: str
    opset: int = Field(ge=17)
    parity_max_abs_diff: float = Field(ge=0)
    dynamic_axes: list[str]
    weights: str = Field(
        "float32", description="how the file stores its weights: float32, or float16 (computed in float32)"
    )
    compute: Literal["float32", "float16"] = Field(
        "float32", description="the arithmetic: float16 for a GPU copy (training.fp16_compute); I/O stays float32"
    )
    fp16_max_abs_diff: float | None = Field(
        None, ge=0, description="float16 weights or arithmetic: max |output difference| from the float32 graph"
    )


class VersionFile(_Strict):
    path: str = Field(description="relative to the model folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(gt=0)


class CardDraft(_Strict):
    """What training knows of a model before export: every card field but the export record, the
    versions' files, the creation time and the commit (``training.export.export_to_repository``
    adds those and writes the ``ModelCard``)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    task: Task
    description: str = ""
    architecture: Architecture
    input: InputSpec
    output: OutputSpec
    labels: list[str] | None = None
    training: DataProvenance
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(description="measured on the held-out test split")
    # the metrics key (higher is better) that picks this task's default model; None: the task's usual one
    headline_metric: str | None = None
    # classifiers: accuracy per named variant of the held-out split (``make eval``'s robustness suite)
    robustness: dict[str, float] | None = None
    radar: RadarSpec | None = None
    # nowcasters: scores per lead time for the model and its baselines on the held-out sequences
    verification: dict[str, Any] | None = None
    metrics_split: str = "test"

    @model_validator(mode="after")
    def _check_task(self) -> CardDraft:
        if self.task == "segmentation":
            classes = self.output.class_channels or self.output.shape[0]  # a distance channel after them: no label
            if not self.labels or classes != len(self.labels):
                raise ValueError("a segmentation card needs one label per class channel")
        if self.task == "classification":
            if not self.labels:
                raise ValueError("a classification card needs labels")
            if self.output.shape != [len(self.labels)]:
                raise ValueError(f"output shape {self.output.shape} does not match {len(self.labels)} labels")
        if self.task == "nowcasting":
            if self.radar is None:
                raise ValueError("a nowcasting card needs a radar block")
            if self.input.channels != self.radar.frames_in or self.output.shape[0] != self.radar.frames_out:
                raise ValueError("input channels / output frames differ from the radar block")
        if self.headline_metric is not None and self.headline_metric not in self.metrics:
            raise ValueError(f"headline metric {self.headline_metric} is not among the card's metrics")
        return self

    def fields(self) -> dict[str, Any]:
        """The draft's fields as they are (nested models kept), to build the ModelCard from."""
        return {k: getattr(self, k) for k in type(self).model_fields}


class ModelCard(CardDraft):
    schema_version: int = CARD_SCHEMA_VERSION
    export: ExportInfo
    versions: dict[int, VersionFile]
    created_at: datetime
    git_commit: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, v: int) -> int:
        if v != CARD_SCHEMA_VERSION:
            raise ValueError(f"unsupported card schema_version {v} (this code reads {CARD_SCHEMA_VERSION})")
        return v

    @model_validator(mode="after")
    def _check_versions(self) -> ModelCard:
        if not self.versions:
            raise ValueError("a card lists at least one version")
        return self

    @property
    def latest_version(self) -> int:
        return max(self.versions)

    def dump(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        return cls.model_validate_json(path.read_text())


HEADLINE_METRICS = {  # per task, when a card does not name its own
    "classification": "accuracy",
    "segmentation": "object_f1",
    "denoising": "psnr_camera_s25_model",
    "nowcasting": "csi_30dbz_60min",
}


def ranking_key(card: ModelCard) -> tuple[bool, float, int]:
    """How a task's models rank for the default route: has its headline metric, the metric's value
    (classifiers: ``robust_accuracy``), then the smaller network."""
    key = card.headline_metric or HEADLINE_METRICS.get(card.task, "accuracy")
    value = card.metrics.get(key)
    return value is not None, float(value) if value is not None else 0.0, -card.architecture.num_parameters
