"""Response models (they document the API in OpenAPI at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    label: str
    index: int
    score: float = Field(description="softmax probability")


class Explanation(BaseModel):
    method: str = "occlusion"
    target: Prediction
    window: int = Field(description="occluded square's side, in network-input pixels")
    stride: int
    grid: list[list[float]] = Field(description="drop of the target's probability when each window is hidden")
    overlay_png: str = Field(description="base64 PNG: the input with the heat map blended on top")


class Preprocessing(BaseModel):
    framed: bool = Field(description="the ink was found, cropped, scaled and centred as the training digits were")
    inverted: bool = Field(description="the image was inverted to light ink on dark (invert=auto found dark ink)")
    alpha_composited_on: str | None = Field(None, description="white | black: transparent pixels became this")
    ink_box: list[int] | None = Field(None, description="left, top, right, bottom of the ink in the upload")


class ImageResult(BaseModel):
    predictions: list[Prediction]
    preprocessing: Preprocessing | None = Field(None, description="cards with framing: what was done to the image")
    warnings: list[str] = Field(
        default_factory=list, description="why this answer may not be trusted (out of domain: scores are not certainty)"
    )
    reliable: bool = Field(True, description="false when a warning says the image is unlike the training data")
    explanation: Explanation | None = None


class ModelRef(BaseModel):
    name: str
    version: int
    provider: str


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int = Field(description="images in the executed batch this request's images rode in")
    explain_ms: float | None = None
    total_ms: float


class ClassifyResponse(BaseModel):
    model: ModelRef
    results: list[ImageResult]
    timings: Timings

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "model": {"name": "resnet20_digits", "version": 1, "provider": "CPUExecutionProvider"},
                    "results": [
                        {
                            "predictions": [
                                {"label": "7", "index": 7, "score": 0.9931},
                                {"label": "1", "index": 1, "score": 0.0021},
                            ]
                        }
                    ],
                    "timings": {
                        "decode_ms": 0.21,
                        "queue_ms": 0.05,
                        "inference_ms": 0.9,
                        "batch_size": 1,
                        "total_ms": 1.4,
                    },
                }
            ]
        }
    }


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES = {
    s: {"model": ErrorResponse, "description": d}
    for s, d in {
        400: "bad request",
        401: "missing or wrong API key",
        404: "unknown model",
        413: "body or image too large",
        415: "unsupported media type",
        422: "undecodable image or invalid parameter",
        503: "queue full (Retry-After) or model not ready",
        504: "request timed out in the queue",
    }.items()
}
