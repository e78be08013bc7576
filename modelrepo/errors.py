"""Errors in the caller's terms, without any web framework: a stable code and a message.

``service/errors.py`` alone turns them into HTTP answers (status by code, 422 by default)."""

from __future__ import annotations

import re


class InputError(ValueError):
    """What the caller sent cannot be used; ``code`` is machine-readable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def plain(exc: BaseException) -> str:
    """An exception's message without Python object reprs (``<_io.BytesIO object at 0x...>``)."""
    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip() or type(exc).__name__
