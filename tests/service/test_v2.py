"""The Open Inference Protocol v2 with the real client (tritonclient[http]) against a live uvicorn:
metadata, health, JSON and binary tensors giving /classify's numbers, any-size models, and errors
in the protocol's ``{"error": "..."}`` shape that leave the server healthy."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelrepo.preprocess import softmax
from modelrepo.repository import scan_repository
from service.tasks.classify import decode
from service.v2 import parse_infer
from tests.conftest import MODELS

CARDS = {e.name: e.card for e in scan_repository(MODELS)}


@pytest.fixture(scope="module")
def client(server):
    return triton.InferenceServerClient(url=server.removeprefix("http://"))


def infer(client, model: str, x: np.ndarray, binary: bool, output: str = "logits") -> np.ndarray:
    i = triton.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    r = client.infer(model, [i], outputs=[triton.InferRequestedOutput(output, binary_data=binary)])
    return r.as_numpy(output)


def test_server_and_model_metadata(client) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "convserve" and "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("resnet20_digits")
    assert m["platform"] == "onnxruntime_onnx" and m["versions"] == ["1"]
    assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 32, 32]}]
    assert m["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata("resnet20_digits", model_version="1")["name"] == "resnet20_digits"
    assert client.is_model_ready("resnet20_digits") and client.is_model_ready("resnet20_digits", "1")
    assert not client.is_model_ready("resnet20_digits", "7")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_gets_the_same_numbers_as_classify(client, server, digits, binary: bool) -> None:
    blobs = [png for png, _ in digits[:4]]
    card = CARDS["resnet20_digits"]
    x, _, _ = decode(blobs, card, 10**8)  # the service's own preprocessing of these uploads
    logits = infer(client, "resnet20_digits", x.astype(np.float32), binary)
    assert logits.shape == (4, 10) and logits.dtype == np.float32
    files = [("files", (f"d{i}.png", b, "image/png")) for i, b in enumerate(blobs)]
    body = httpx.post(f"{server}/classify?model=resnet20_digits&top_k=10", files=files, timeout=30).json()
    for probs, result in zip(softmax(logits), body["results"]):
        for p in result["predictions"]:
            assert abs(probs[p["index"]] - p["score"]) < 1e-5
    assert [int(np.argmax(v)) for v in logits] == [label for _, label in digits[:4]]


def test_any_size_models_take_any_size(client) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random((1, 1, 48, 80), np.float32), np.full((1, 1, 48, 80), 0.1, np.float32)], axis=1)
    y = infer(client, "unet_denoise_gray", x, True, output="image")
    assert y.shape == (1, 1, 48, 80) and np.isfinite(y).all()
    with pytest.raises(InferenceServerException, match="multiples of"):  # the raw tensor: the caller pads
        infer(client, "unet_denoise_gray", x[:, :, :40, :56].copy(), True, output="image")
    assert client.get_model_metadata("unet_denoise_gray")["inputs"][0]["shape"] == [-1, 2, -1, -1]


def test_errors_are_v2_shaped_and_leave_the_server_healthy(client, server) -> None:
    def one(shape, data, name="input"):
        return {"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": data}]}

    infer_path = "/v2/models/lenet5_digits/infer"
    bad = [
        ("/v2/models/nope/infer", {"inputs": []}, 404),
        (infer_path, {"inputs": []}, 400),
        (infer_path, one([1, 1, 32, 32], [0.0]), 400),  # too few values for the shape
        (infer_path, one([1, 3, 32, 32], [0.0] * 3072), 400),  # wrong channels
        (infer_path, one([1], [0.0], name="other"), 400),  # not the model's input
        ("/v2/models/lenet5_digits/versions/9/infer", {"inputs": []}, 404),
    ]
    for path, body, status in bad:
        r = httpx.post(server + path, json=body)
        assert r.status_code == status, (path, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"], r.text
    r = httpx.post(
        server + "/v2/models/lenet5_digits/infer", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    declared = {"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "parameters": {"binary_data_size": 4096}}
    header = json.dumps({"inputs": [declared]}).encode()
    r = httpx.post(  # declares more binary data than it sends
        server + infer_path, content=header + b"\0" * 10, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert r.status_code == 400
    with pytest.raises(InferenceServerException, match="shape"):
        infer(client, "lenet5_digits", np.zeros((1, 1, 28, 28), np.float32), True)
    assert httpx.get(server + "/classify").status_code == 405  # other routes keep their own error shape
    assert isinstance(httpx.get(server + "/classify").json()["error"], dict)
    assert client.is_server_ready() and infer(
        client, "lenet5_digits", np.zeros((1, 1, 32, 32), np.float32), False
    ).shape == (1, 10)


def test_datatypes_decode_from_json_and_binary() -> None:
    def head(inputs):
        return json.dumps({"inputs": inputs}).encode()

    r = parse_infer(head([{"name": "a", "shape": [2, 2], "datatype": "UINT8", "data": [[1, 2], [3, 4]]}]), None)
    assert r.inputs["a"].dtype == np.uint8 and r.inputs["a"].tolist() == [[1, 2], [3, 4]]
    raw = np.array([1.5, -2.0, 3.25], np.float16).tobytes() + np.array([True, False], np.bool_).tobytes()
    h = head([
        {"name": "h", "shape": [3], "datatype": "FP16", "parameters": {"binary_data_size": 6}},
        {"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
    ])  # fmt: skip
    r = parse_infer(h + raw, str(len(h)))
    assert r.inputs["h"].tolist() == [1.5, -2.0, 3.25] and r.inputs["b"].tolist() == [True, False]
    words = b"".join(len(w).to_bytes(4, "little") + w for w in (b"ab", b"xyz"))
    h = head([{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(words)}}])
    assert parse_infer(h + words, str(len(h))).inputs["s"].tolist() == [b"ab", b"xyz"]
    r = parse_infer(head([{"name": "i", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]), None)
    assert r.inputs["i"].dtype == np.int64 and r.inputs["i"].shape == (1, 3)
