"""Schemathesis against the live OpenAPI schema of a real uvicorn on 127.0.0.1: every operation, with
requests that fit the schema and requests that do not. No answer may be a 5xx, and every 4xx must be
the one JSON error shape (``{"error": {"code", "message"}}``; ``{"error": "..."}`` on ``/v2``).

``CONVSERVE_FUZZ_EXAMPLES`` cases per operation and mode (``make test``: a quick, derandomised
profile; ``make fuzz``: >= 10,000 requests, random). The tally is written to
``test-artifacts/fuzz/openapi.json``."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.conftest import ROOT
from tests.service.conftest import running_server

EXAMPLES = int(os.environ.get("CONVSERVE_FUZZ_EXAMPLES", "6"))
MIN_REQUESTS = int(os.environ.get("CONVSERVE_FUZZ_MIN_REQUESTS", "0"))
RANDOM = os.environ.get("CONVSERVE_FUZZ_RANDOM") == "1"
OUT = ROOT / "test-artifacts" / "fuzz"


def error_shape_ok(path: str, body: object) -> bool:
    if not isinstance(body, dict) or set(body) != {"error"}:
        return False
    if path.startswith("/v2"):
        return isinstance(body["error"], str) and bool(body["error"])
    e = body["error"]
    return isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("message"), str)


def _plain(v: object) -> object:
    return json.loads(json.dumps(v, default=repr)) if v else None


class Tally:
    def __init__(self) -> None:
        self.requests, self.by_status, self.by_operation = 0, Counter(), Counter()
        self.server_errors: list[dict] = []
        self.bad_shapes: list[dict] = []
        self.unsatisfiable: list[str] = []

    def record(self, label: str, path: str, case, response) -> None:
        self.requests += 1
        self.by_status[response.status_code] += 1
        self.by_operation[f"{label} {response.status_code}"] += 1
        what = {
            "operation": label,
            "query": _plain(case.query),
            "path_parameters": _plain(case.path_parameters),
            "media_type": case.media_type,
            "status": response.status_code,
            "body": response.content[:300].decode("latin-1"),
        }
        if response.status_code >= 500:
            self.server_errors.append(what)
        elif response.status_code >= 400:
            try:
                ok = error_shape_ok(path, json.loads(response.content))
            except ValueError:
                ok = False
            if not ok:
                self.bad_shapes.append(what)

    def write(self) -> dict:
        summary = {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "by_operation_and_status": dict(sorted(self.by_operation.items())),
            "responses_5xx": len(self.server_errors),
            "4xx_not_in_the_error_shape": len(self.bad_shapes),
            "examples_per_operation_and_mode": EXAMPLES,
            "no_case_to_generate": self.unsatisfiable,
            "first_5xx": self.server_errors[:10],
            "first_bad_shapes": self.bad_shapes[:10],
        }
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "openapi.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


TASK_MODELS = {"/classify": "lenet5_digits", "/segment": "unet_cells", "/denoise": "unet_denoise_gray",
               "/nowcast": "unet_nowcast"}  # fmt: skip
MODELS = [*TASK_MODELS.values(), "resnet20_digits"]


def _pins(op) -> list[dict]:
    """Free generation, plus runs with a real model in the path or the ``model`` query, so that the
    generated requests reach the decoders and the models instead of stopping at a 404."""
    pins: list[dict] = [{}]
    if "{name}" in op.path:
        pins += [
            {"path_parameters": {"name": m} | ({"version": "1"} if "{version}" in op.path else {})} for m in MODELS
        ]
    elif op.path in TASK_MODELS:
        pins.append({"query": {"model": TASK_MODELS[op.path]}})
    return pins


def _fuzz(op, mode, base_url: str, tally: Tally, pinned: dict, examples: int):
    """A hypothesis test sending ``EXAMPLES`` generated requests for one operation and mode."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode, **pinned))
    def run(case) -> None:
        tally.record(op.label, op.path, case, case.call(base_url=base_url, timeout=60))

    return run


@pytest.fixture(scope="module")
def live() -> str:
    with running_server(env={"CONVSERVE_REQUEST_TIMEOUT_S": "20"}) as base:
        yield base


def test_no_request_the_schema_allows_or_forbids_gets_a_5xx(live) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    tally = Tally()
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 15  # every task route, models, health, metrics, v2
    for op in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            pins = _pins(op)
            for pinned in pins:
                # free generation where a model can be named mostly meets unknown names (404): most of
                # the budget goes to the runs pinned to real models, which reach decoders and models
                examples = EXAMPLES if pinned or len(pins) == 1 else max(2, EXAMPLES // 5)
                try:
                    _fuzz(op, mode, live, tally, pinned, examples)()
                except Unsatisfiable:  # nothing the schema forbids (an operation without parameters or body)
                    tally.unsatisfiable.append(f"{op.label} ({mode}, {pinned})")
    summary = tally.write()
    assert summary["responses_5xx"] == 0, summary["first_5xx"]
    assert summary["4xx_not_in_the_error_shape"] == 0, summary["first_bad_shapes"]
    assert tally.requests >= max(MIN_REQUESTS, len(operations))
