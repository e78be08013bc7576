"""Several versions of one model served side by side, as config.pbtxt's ``version_policy`` says:
``?version=`` on the task routes, the version path on v2, the versions in /models, per-version
metrics; ``instance_group { kind: KIND_CPU }`` honoured. Real ONNX Runtime sessions throughout."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from modelrepo.card import ModelCard, VersionFile
from modelrepo.repository import sha256_file
from tests.conftest import MODELS
from tests.service.conftest import ready_client, running_server

NAME = "lenet5_digits"


def _repository(root: Path, policy: str, extra: str = "") -> Path:
    """lenet5_digits with a version 2 (resnet20's weights: same input and output, other answers)."""
    model = root / NAME
    shutil.copytree(MODELS / NAME, model)
    (model / "2").mkdir()
    shutil.copy(MODELS / "resnet20_digits" / "1" / "model.onnx", model / "2" / "model.onnx")
    card = ModelCard.load(model / "card.json")
    f = model / "2" / "model.onnx"
    card.versions[2] = VersionFile(path="2/model.onnx", sha256=sha256_file(f), bytes=f.stat().st_size)
    card.dump(model / "card.json")
    config = (model / "config.pbtxt").read_text()
    config = config.replace("version_policy: { latest { num_versions: 1 } }", f"version_policy: {policy}")
    (model / "config.pbtxt").write_text(config + extra)
    return root


def _scores(client, digit: bytes, query: str = "") -> tuple[int, list[float]]:
    r = client.post(f"/classify?model={NAME}&top_k=10{query}", content=digit, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    preds = sorted(r.json()["results"][0]["predictions"], key=lambda p: p["index"])
    return r.json()["model"]["version"], [p["score"] for p in preds]


@pytest.fixture(scope="module")
def all_versions(tmp_path_factory) -> Path:
    return _repository(tmp_path_factory.mktemp("versions"), "{ all { } }")


def test_every_version_is_served_side_by_side(all_versions, digits) -> None:
    digit = digits[3][0]
    with ready_client(models_dir=all_versions) as c:
        latest, s_latest = _scores(c, digit)
        one, s_one = _scores(c, digit, "&version=1")
        two, s_two = _scores(c, digit, "&version=2")
        assert (latest, one, two) == (2, 1, 2) and s_latest == s_two and s_one != s_two
        with ready_client() as committed:  # version 1 is the committed lenet5_digits, answer for answer
            assert _scores(committed, digit)[1] == pytest.approx(s_one, abs=1e-6)
        listed = {m["name"]: m for m in c.get("/models").json()["models"]}
        assert listed[NAME]["versions"] == [1, 2] and listed[NAME]["version"] == 2
        assert c.get(f"/models/{NAME}?version=1").json()["version"] == 1
        missing = c.post(f"/classify?model={NAME}&version=3", content=digit, headers={"content-type": "image/png"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"
        assert "served: 1, 2" in missing.json()["error"]["message"]
        assert c.get(f"/v2/models/{NAME}").json()["versions"] == ["1", "2"]
        assert c.get(f"/v2/models/{NAME}/versions/1/ready").status_code == 200
        assert c.get(f"/v2/models/{NAME}/versions/3/ready").status_code == 404
        metrics = c.get("/metrics").text
        for v in ("1", "2"):
            assert f'nv_inference_request_success{{model="{NAME}",version="{v}"}}' in metrics
            assert f'nv_inference_count{{model="{NAME}",version="{v}"}}' in metrics


def test_v2_infer_reaches_the_version_in_the_path(all_versions) -> None:
    import numpy as np

    x = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    with ready_client(models_dir=all_versions) as c:
        out = {}
        for v in ("1", "2"):
            r = c.post(f"/v2/models/{NAME}/versions/{v}/infer", json=body)
            assert r.status_code == 200 and r.json()["model_version"] == v
            out[v] = r.json()["outputs"][0]["data"]
        assert out["1"] != out["2"]
        assert c.post(f"/v2/models/{NAME}/infer", json=body).json()["outputs"][0]["data"] == out["2"]


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("{ latest { num_versions: 1 } }", [2]),
        ("{ latest { num_versions: 2 } }", [1, 2]),
        ("{ specific { versions: [ 1 ] } }", [1]),
    ],
)
def test_version_policy_decides_what_is_served(tmp_path, policy, served) -> None:
    with ready_client(models_dir=_repository(tmp_path, policy)) as c:
        assert c.get(f"/models/{NAME}").json()["versions"] == served
        status = [
            c.post(
                f"/classify?model={NAME}&version={v}", content=b"x", headers={"content-type": "image/png"}
            ).status_code
            for v in (1, 2)
        ]
        assert [s != 404 for s in status] == [v in served for v in (1, 2)]  # 400 (bad image) once it gets that far


def test_a_policy_naming_a_missing_version_makes_the_model_unavailable(tmp_path) -> None:
    with ready_client(models_dir=_repository(tmp_path, "{ specific { versions: [ 1, 5 ] } }")) as c:
        m = c.get(f"/models/{NAME}").json()
        assert m["status"] == "unavailable" and "version 5" in m["reason"]


def test_instance_group_kind_cpu_pins_the_model_to_the_cpu(tmp_path) -> None:
    repo = _repository(tmp_path, "{ latest { num_versions: 1 } }", "instance_group [ { count: 1 kind: KIND_CPU } ]\n")
    with ready_client(models_dir=repo) as c:
        m = c.get(f"/models/{NAME}").json()
        assert m["requested_providers"] == ["CPUExecutionProvider"] and m["fallback"] is None
        assert m["provider"] == "CPUExecutionProvider"


def test_versions_side_by_side_with_workers(all_versions, digits) -> None:
    digit = digits[3][0]
    with running_server("--models", str(all_versions), "--workers", "2") as base:
        answers = {}
        for v in (1, 2):
            r = httpx.post(
                f"{base}/classify?model={NAME}&top_k=10&version={v}",
                content=digit,
                headers={"content-type": "image/png"},
                timeout=30,
            )
            assert r.status_code == 200 and r.json()["model"]["version"] == v
            answers[v] = sorted((p["index"], p["score"]) for p in r.json()["results"][0]["predictions"])
        assert answers[1] != answers[2]
