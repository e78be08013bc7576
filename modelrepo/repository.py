"""Reading and writing the Triton-compatible model repository on disk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from modelrepo.card import Dim, ModelCard
from modelrepo.errors import InputError
from modelrepo.model_config import ModelConfig, parse_model_config

CARD_FILE = "card.json"
CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dims(dims: list[Dim]) -> str:
    return ", ".join("-1" if d == "any" else str(d) for d in dims)


def config_pbtxt(card: ModelCard, max_batch_size: int) -> str:
    """Triton's model configuration for this card (dims exclude the batch axis)."""
    spec = card.input
    in_dims = _dims([spec.tensor_channels, spec.height, spec.width])
    label_line = f'\n    label_filename: "{LABELS_FILE}"' if card.labels else ""
    return f"""name: "{card.name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{spec.name}"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ {in_dims} ]
  }}
]
output [
  {{
    name: "{card.output.name}"
    data_type: TYPE_FP32
    dims: [ {_dims(card.output.shape)} ]{label_line}
  }}
]
version_policy: {{ latest {{ num_versions: 1 }} }}
dynamic_batching {{ }}
"""


def write_repository_files(model_dir: Path, card: ModelCard, max_batch_size: int) -> None:
    """Write card.json, config.pbtxt and (for classifiers) labels.txt beside the version folders."""
    model_dir.mkdir(parents=True, exist_ok=True)
    card.dump(model_dir / CARD_FILE)
    (model_dir / CONFIG_FILE).write_text(config_pbtxt(card, max_batch_size))
    if card.labels:
        (model_dir / LABELS_FILE).write_text("\n".join(card.labels) + "\n")


@dataclass
class ModelEntry:
    """One model folder: its card (if readable) and why it cannot be served (if it cannot)."""

    name: str
    path: Path
    card: ModelCard | None = None
    config: ModelConfig | None = None  # config.pbtxt, parsed
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.card is not None and not self.problems

    @property
    def served_versions(self) -> list[int]:
        """The versions config.pbtxt's ``version_policy`` selects among the card's (ascending)."""
        assert self.card is not None
        return select_versions(sorted(self.card.versions), self.config.versions if self.config else 1)[0]

    def version_path(self, version: int | None = None) -> Path:
        assert self.card is not None
        v = self.card.latest_version if version is None else version
        return self.path / self.card.versions[v].path


def select_versions(available: list[int], policy: str | int | list[int]) -> tuple[list[int], list[str]]:
    """Triton's ``version_policy`` over the available versions: "all", the latest N (an int) or the
    specific versions (a list); returns (versions served ascending, problems)."""
    if policy == "all":
        return available, []
    if isinstance(policy, int):
        return available[-policy:], []
    missing = sorted(set(policy) - set(available))
    served = [v for v in available if v in policy]
    problems = [f"version_policy asks for version {v}, which the card does not list" for v in missing]
    if not served:
        problems.append("version_policy selects none of the card's versions")
    return served, problems


def check_model_dir(model_dir: Path) -> ModelEntry:
    """Validate the card and the sha256 of every version file; collect problems, never raise."""
    entry = ModelEntry(name=model_dir.name, path=model_dir)
    try:
        entry.card = ModelCard.load(model_dir / CARD_FILE)
    except FileNotFoundError:
        entry.problems.append(f"{CARD_FILE} is missing")
        return entry
    except ValueError as e:  # pydantic.ValidationError and JSON errors are ValueErrors
        entry.problems.append(f"{CARD_FILE} is invalid: {e}")
        return entry
    card = entry.card
    if card.name != model_dir.name:
        entry.problems.append(f"card name {card.name!r} differs from the folder name {model_dir.name!r}")
    if not (model_dir / CONFIG_FILE).is_file():
        entry.problems.append(f"{CONFIG_FILE} is missing")
    else:
        try:
            entry.config = parse_model_config((model_dir / CONFIG_FILE).read_text())
        except InputError as exc:
            entry.problems.append(exc.message)
        else:
            entry.problems += select_versions(sorted(card.versions), entry.config.versions)[1]
    for version, vf in sorted(card.versions.items()):
        f = model_dir / vf.path
        if not f.is_file():
            entry.problems.append(f"version {version}: {vf.path} is missing")
        elif (digest := sha256_file(f)) != vf.sha256:
            entry.problems.append(
                f"version {version}: sha256 {digest[:12]}… does not match the card's {vf.sha256[:12]}…"
            )
    return entry


def scan_repository(root: Path) -> list[ModelEntry]:
    """Every model folder under root (a folder holding a card.json or a config.pbtxt), sorted by name."""
    if not root.is_dir():
        return []
    dirs = [
        p for p in sorted(root.iterdir()) if p.is_dir() and ((p / CARD_FILE).exists() or (p / CONFIG_FILE).exists())
    ]
    return [check_model_dir(p) for p in dirs]
