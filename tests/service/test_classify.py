"""POST /classify happy paths against the real app and the committed classifiers."""

from __future__ import annotations

import base64
import io

import numpy as np
import onnxruntime as ort
from PIL import Image

from modelrepo.preprocess import preprocess
from modelrepo.repository import check_model_dir
from tests.conftest import MODELS


def test_multipart_single_image_is_classified_correctly(client, digits) -> None:
    hits = 0
    for data, label in digits[:40]:
        r = client.post("/classify", files={"file": ("digit.png", data, "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        hits += body["results"][0]["predictions"][0]["label"] == str(label)
    assert hits >= 39
    assert body["model"]["provider"] == "CPUExecutionProvider" or body["model"]["provider"].endswith(
        "ExecutionProvider"
    )
    assert set(body["timings"]) >= {"queue_ms", "inference_ms", "decode_ms", "total_ms"}
    assert r.headers["x-request-id"]


def test_files_batch_keeps_order(client, digits) -> None:
    batch = digits[40:52]
    r = client.post(
        "/classify?top_k=1", files=[("files", (f"{i}.png", d, "image/png")) for i, (d, _) in enumerate(batch)]
    )
    assert r.status_code == 200, r.text
    labels = [res["predictions"][0]["label"] for res in r.json()["results"]]
    assert len(labels) == 12
    assert sum(a == str(b) for a, (_, b) in zip(labels, batch)) >= 11


def test_raw_body_and_json_base64_agree_with_multipart(client, digits) -> None:
    data, label = digits[3]
    multipart = client.post("/classify", files={"file": ("d.png", data, "image/png")}).json()
    raw = client.post("/classify", content=data, headers={"content-type": "image/png"}).json()
    b64 = base64.b64encode(data).decode()
    js = client.post("/classify", json={"image": b64}).json()
    url = client.post("/classify", json={"images": ["data:image/png;base64," + b64]}).json()
    for other in (raw, js, url):
        assert other["results"] == multipart["results"]
    assert multipart["results"][0]["predictions"][0]["label"] == str(label)


def test_scores_equal_a_direct_onnx_runtime_run(client, digits) -> None:
    entry = check_model_dir(MODELS / "lenet5_digits")
    sess = ort.InferenceSession(str(entry.version_path()), providers=["CPUExecutionProvider"])
    data, _ = digits[7]
    x = preprocess([Image.open(io.BytesIO(data))], entry.card.input)
    logits = sess.run(None, {"input": x})[0][0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    r = client.post("/classify?model=lenet5_digits&top_k=10", content=data, headers={"content-type": "image/png"})
    preds = r.json()["results"][0]["predictions"]
    assert [q["index"] for q in preds] == list(np.argsort(-p, kind="stable"))
    np.testing.assert_allclose([q["score"] for q in preds], np.sort(p)[::-1], atol=2e-6)
    assert r.json()["model"] == {"name": "lenet5_digits", "version": 1, "provider": "CPUExecutionProvider"}


def test_top_k_and_every_default_model(client, digits) -> None:
    sample = digits[100:150]
    files = [("files", (f"{i}.png", d, "image/png")) for i, (d, _) in enumerate(sample)]
    for name in ("lenet5_digits", "alexnet_digits", "vgg11_bn_digits", "googlenet_digits", "resnet20_digits"):
        r = client.post(f"/classify?model={name}&top_k=3", files=files)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        for res in results:
            preds = res["predictions"]
            assert len(preds) == 3 and preds[0]["score"] >= preds[1]["score"] >= preds[2]["score"]
        hits = sum(res["predictions"][0]["label"] == str(y) for res, (_, y) in zip(results, sample))
        assert hits >= 47, f"{name}: {hits}/50"  # 64x64 uploads, resized by the card: a small domain shift


def test_rgb_and_jpeg_inputs_are_converted_by_the_card(client, digits) -> None:
    data, label = digits[20]
    rgb = Image.open(io.BytesIO(data)).convert("RGB").resize((300, 300))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=95)
    r = client.post("/classify", files={"file": ("d.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200
    assert r.json()["results"][0]["predictions"][0]["label"] == str(label)


def test_occlusion_explanation_points_at_the_digit(client, digits) -> None:
    data, label = digits[5]
    r = client.post("/classify?explain=occlusion&model=resnet20_digits", files={"file": ("d.png", data, "image/png")})
    assert r.status_code == 200, r.text
    ex = r.json()["results"][0]["explanation"]
    grid = np.array(ex["grid"])
    assert grid.shape == (7, 7) and ex["window"] == 8 and ex["stride"] == 4
    assert ex["target"]["label"] == r.json()["results"][0]["predictions"][0]["label"]
    corners = np.array([grid[0, 0], grid[0, -1], grid[-1, 0], grid[-1, -1]])
    assert grid[1:-1, 1:-1].max() > corners.max()  # hiding ink matters more than hiding empty corners
    png = Image.open(io.BytesIO(base64.b64decode(ex["overlay_png"])))
    assert png.format == "PNG" and min(png.size) >= 160
    assert r.json()["timings"]["explain_ms"] > 0


def test_response_matches_the_documented_schema(client, digits) -> None:
    from service.schemas import ClassifyResponse

    for query in ("", "?explain=occlusion"):
        r = client.post(f"/classify{query}", content=digits[0][0], headers={"content-type": "image/png"})
        ClassifyResponse.model_validate(r.json())  # raises if the hand-built JSON drifts from the schema
