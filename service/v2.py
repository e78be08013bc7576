"""The Open Inference Protocol v2 (KServe / Triton REST) tensors: decoding an infer request (JSON
data and Triton's binary tensor data extension) and encoding the response. No web framework here;
``InputError`` carries what is wrong (the v2 routes answer it as ``{"error": "..."}``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from modelrepo.errors import InputError

DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}  # fmt: skip
NAMES = {np.dtype(v): k for k, v in DTYPES.items() if k != "BYTES"}
MAX_HEADER = 16 * 1024 * 1024


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]  # by name, in request order
    outputs: dict[str, bool]  # requested output name -> binary; empty: every output
    binary_output: bool  # request-level ``binary_data_output``
    parameters: dict = field(default_factory=dict)


def _bytes_elements(raw: bytes, what: str) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise InputError("invalid_tensor", f"{what}: truncated BYTES element length")
        n = int.from_bytes(raw[i : i + 4], "little")
        out.append(raw[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _tensor(spec: object, blob: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """One request input: (name, array, bytes of binary data it took)."""
    if not isinstance(spec, dict):
        raise InputError("invalid_request", "each input must be an object with name, shape, datatype and data")
    name, shape, dtype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(name, str) or not isinstance(shape, list) or dtype not in DTYPES:
        raise InputError(
            "invalid_request",
            f"input {name!r}: needs a name, a shape (list of ints) and a datatype of {sorted(DTYPES)}",
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) or len(shape) > 8:
        raise InputError("invalid_request", f"input {name!r}: shape {shape} must be non-negative integers")
    count = int(np.prod(shape)) if shape else 1
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(blob):
            raise InputError("invalid_request", f"input {name!r}: binary_data_size {size} runs past the body")
        raw = bytes(blob[offset : offset + size])
        if dtype == "BYTES":
            a = np.array(_bytes_elements(raw, f"input {name!r}"), dtype=object)
        else:
            width = np.dtype(DTYPES[dtype]).itemsize
            if size != count * width:
                raise InputError(
                    "invalid_tensor", f"input {name!r}: {size} bytes for shape {shape} of {dtype} ({count * width})"
                )
            a = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).astype(DTYPES[dtype])
        used = size
    else:
        data = spec.get("data")
        if data is None:
            raise InputError("invalid_request", f"input {name!r} has neither data nor binary_data_size")
        try:
            a = np.asarray(data, dtype=object if dtype == "BYTES" else DTYPES[dtype]).ravel()
        except (TypeError, ValueError, OverflowError):
            raise InputError("invalid_tensor", f"input {name!r}: data are not {dtype} values") from None
        used = 0
    if a.size != count:
        raise InputError("invalid_tensor", f"input {name!r}: {a.size} values for shape {shape} ({count})")
    return name, a.reshape(shape), used


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """An infer request: the JSON header (all of the body, or its first ``header_length`` bytes) and
    the binary tensors after it, in the order of the inputs that declare ``binary_data_size``."""
    n = len(body)
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > min(n, MAX_HEADER):
            raise InputError(
                "invalid_request", f"Inference-Header-Content-Length {header_length!r} is not within the body"
            )
        n = int(header_length)
    try:
        head = json.loads(body[:n])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InputError("invalid_request", "the inference request header is not valid JSON") from None
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list) or not head["inputs"]:
        raise InputError("invalid_request", 'the request needs "inputs": a non-empty list of tensors')
    blob, offset, inputs = memoryview(body)[n:], 0, {}
    for spec in head["inputs"]:
        name, a, used = _tensor(spec, blob, offset)
        inputs[name], offset = a, offset + used
    if offset != len(blob):
        raise InputError("invalid_request", f"{len(blob) - offset} bytes after the declared binary tensors")
    params = head.get("parameters") or {}
    outputs = {}
    for o in head.get("outputs") or []:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InputError("invalid_request", "each requested output must be an object with a name")
        outputs[o["name"]] = bool((o.get("parameters") or {}).get("binary_data", params.get("binary_data_output")))
    rid = head.get("id")
    return InferRequest(
        str(rid) if rid is not None else None, inputs, outputs, bool(params.get("binary_data_output")), params
    )


def encode_response(
    model: str, version: int | None, rid: str | None, outputs: dict[str, tuple[np.ndarray, bool]]
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    head: dict = {"model_name": model, "model_version": str(version) if version is not None else "1", "outputs": []}
    if rid is not None:
        head["id"] = rid
    chunks = []
    for name, (a, binary) in outputs.items():
        entry = {"name": name, "datatype": NAMES[a.dtype], "shape": list(a.shape)}
        if binary:
            raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = a.ravel().tolist()
        head["outputs"].append(entry)
    header = json.dumps(head, separators=(",", ":")).encode()
    return (header + b"".join(chunks), len(header)) if chunks else (header, None)
