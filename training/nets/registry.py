"""The registry of network builders and the two input presets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Preset:
    """Input geometry and head size a builder is configured for."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int


PRESETS = {
    "imagenet": Preset("imagenet", in_channels=3, image_size=224, num_classes=1000),
    "small": Preset("small", in_channels=3, image_size=32, num_classes=10),
}


@dataclass(frozen=True)
class ArchInfo:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    presets: tuple[str, ...]
    # torchvision builder whose state-dict layout this architecture reproduces at the imagenet preset
    torchvision_name: str | None = None


_REGISTRY: dict[str, ArchInfo] = {}


def register(family: str, presets: tuple[str, ...] = ("imagenet", "small"), torchvision: bool = False):
    """Decorator: register a builder ``fn(preset, num_classes, in_channels, **kw)`` under its name."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} registered twice")
        _REGISTRY[name] = ArchInfo(name, family, fn, presets, name if torchvision else None)
        return fn

    return deco


def list_archs() -> list[str]:
    return sorted(_REGISTRY)


def get_arch(name: str) -> ArchInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}") from None


def build(
    name: str,
    preset: str = "small",
    num_classes: int | None = None,
    in_channels: int | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered network; classes and channels default to the preset's."""
    info = get_arch(name)
    if preset not in info.presets:
        raise ValueError(f"{name} supports presets {info.presets}, not {preset!r}")
    p = PRESETS[preset]
    return info.builder(
        preset=preset,
        num_classes=p.num_classes if num_classes is None else num_classes,
        in_channels=p.in_channels if in_channels is None else in_channels,
        **kwargs,
    )


def scaled(channels: int, width: float) -> int:
    """Channel count times a width multiplier, at least 4."""
    return max(4, int(round(channels * width)))
