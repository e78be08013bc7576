"""Tiling large images: where the tiles start."""

from __future__ import annotations


def tile_origins(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of ``tile``-px tiles every ``step`` px along ``length``, the last flush with the end."""
    if length <= tile:
        return [0]
    return sorted(set(list(range(0, length - tile, max(1, step))) + [length - tile]))
