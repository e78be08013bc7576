"""/models, /health, /metrics, request ids, readiness, provider reporting and broken models."""

from __future__ import annotations

import httpx
import onnxruntime as ort
import pytest

from service.metrics import ServiceMetrics
from service.registry import ModelRegistry, ProviderUnavailableError
from service.settings import Settings
from tests.conftest import MODELS
from tests.service.conftest import make_client, ready_client


def test_models_lists_every_model_with_its_actual_provider(client) -> None:
    body = client.get("/models").json()
    names = {m["name"] for m in body["models"]}
    assert {"lenet5_digits", "alexnet_digits", "vgg11_bn_digits", "googlenet_digits", "resnet20_digits"} <= names
    registry = client.app.state.registry
    for m in body["models"]:
        assert m["ready"] and m["status"] == "ready"
        assert m["providers"] == registry.models[m["name"]].session.get_providers()
    assert body["defaults"]["classification"] in names


def test_cpu_fallback_is_reported_when_cuda_does_not_come_up(client) -> None:
    m = client.get("/models/resnet20_digits").json()
    if "CUDAExecutionProvider" in ort.get_available_providers() and m["provider"] == "CPUExecutionProvider":
        assert m["fallback"] and "CUDAExecutionProvider" in m["fallback"]
        assert client.get("/health/ready").json()["models"]["resnet20_digits"]["fallback"]
    elif m["provider"] == "CUDAExecutionProvider":
        assert m["fallback"] is None
    assert m["card"]["name"] == "resnet20_digits" and m["card"]["labels"] == [str(i) for i in range(10)]


def test_explicit_cuda_that_does_not_come_up_fails_start_up() -> None:
    registry = ModelRegistry(Settings(models_dir=MODELS, providers=["cuda"]), ServiceMetrics())
    try:
        registry.load()
    except ProviderUnavailableError as exc:
        assert "CUDAExecutionProvider" in str(exc) and "CONVSERVE_PROVIDERS" in str(exc)
    else:  # a machine with a working GPU: then every model must really run on CUDA
        assert all(s.provider == "CUDAExecutionProvider" for s in registry.models.values() if s.session)


def test_cpu_only_has_no_fallback() -> None:
    registry = ModelRegistry(Settings(models_dir=MODELS, providers=["cpu"]), ServiceMetrics())
    registry.load()
    assert all(s.providers == ["CPUExecutionProvider"] and s.fallback is None for s in registry.models.values())


def test_readiness_flips_only_after_warm_up() -> None:
    with make_client(warmup=False) as c:
        assert c.get("/health/live").status_code == 200
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert "warming up" in r.json()["error"]["message"]
        assert r.json()["models"]["lenet5_digits"]["status"] == "warming"
        c.app.state.registry.warmup()
        r = c.get("/health/ready")
        assert r.status_code == 200 and r.json()["models"]["lenet5_digits"]["status"] == "ready"


def test_sha256_mismatch_makes_one_model_unavailable_while_others_serve(models_copy, digits) -> None:
    f = models_copy / "lenet5_digits" / "1" / "model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with ready_client(models_dir=models_copy) as c:
        # ready_client waited for readiness: an unavailable model does not hold it back
        m = c.get("/models/lenet5_digits").json()
        assert m["status"] == "unavailable" and "sha256" in m["reason"]
        r = c.post("/classify?model=lenet5_digits", content=digits[0][0], headers={"content-type": "image/png"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        r = c.post("/classify", content=digits[0][0], headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["model"]["name"] == "resnet20_digits"


def test_request_id_is_echoed_or_made(client) -> None:
    assert client.get("/health/live", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/health/live").headers["x-request-id"]
    assert len(made) == 32


def test_metrics_count_requests_batches_and_queue(client, digits) -> None:
    client.post("/classify?model=lenet5_digits", content=digits[0][0], headers={"content-type": "image/png"})
    client.post("/classify?model=nope", content=digits[0][0], headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert 'convserve_http_requests_total{model="lenet5_digits",route="/classify",status="200"}' in text
    assert 'status="404"' in text
    values = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}
    lenet = '{model="lenet5_digits",version="1"}'
    for family in ("count", "exec_count", "request_success", "request_duration_us", "compute_infer_duration_us"):
        assert values[f"nv_inference_{family}{lenet}"] > 0, family  # Triton's names: no _total suffix
    assert "nv_inference_queue_duration_us" + lenet in values
    client.post("/classify?model=lenet5_digits", content=b"not an image", headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert 'nv_inference_request_failure{model="lenet5_digits",reason="OTHER",version="1"} 1.0' in text
    for name in (
        "convserve_batch_size_bucket",
        "convserve_queue_length",
        "convserve_model_ready",
    ):
        assert name in text


def test_openapi_documents_every_endpoint(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/classify", "/models", "/models/{name}", "/health/live", "/health/ready", "/metrics"):
        assert path in spec["paths"]
    body = spec["paths"]["/classify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/json"} <= set(body)
    assert client.get("/docs").status_code == 200


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Settings(providers=["auto", "cpu"])
    with pytest.raises(ValueError):
        Settings(max_batch_size=0)
    with pytest.raises(ValueError):
        Settings(batch_sizes={"m": 5000})
    with pytest.raises(ValueError):
        Settings(api_key="short")


def test_json_logs_carry_the_request_id(capsys) -> None:
    import json
    import logging

    from service.logs import configure_logging, request_id_var

    configure_logging("json", "info")
    token = request_id_var.set("rid-42")
    try:
        logging.getLogger("convserve.test").info("hello", extra={"status": 200})
    finally:
        request_id_var.reset(token)
        configure_logging("text", "info")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["request_id"] == "rid-42" and line["message"] == "hello" and line["status"] == 200


def test_console_script_is_installed() -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("convserve") or str(Path(sys.executable).parent / "convserve")
    r = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--workers" in r.stdout


def test_the_service_never_imports_torch() -> None:
    import subprocess
    import sys

    code = "import sys, service.app, service.engine, service.__main__; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_a_cpu_host_starts_without_an_error_line() -> None:
    """With providers=auto and no NVIDIA driver, CUDA is not even asked for: no loader error (ONNX
    Runtime prints one in red otherwise), one INFO line, and the models say why they run on CPU."""
    import sys
    from pathlib import Path

    from service.launch import ServerProcess, free_port
    from service.registry import nvidia_driver_present

    if nvidia_driver_present():
        pytest.skip("this host has an NVIDIA driver")
    port = free_port()
    cmd = [sys.executable, "-m", "service", "--models", str(MODELS), "--port", str(port)]
    server = ServerProcess(cmd, port, MODELS.parent, timeout_s=90)
    try:
        body = httpx.get(f"{server.url}/models/resnet20_digits").json()
    finally:
        server.stop(keep_log=True)
    log = server.log_text()
    Path(server.log.name).unlink()
    assert "error" not in log.lower(), log[-2000:]
    assert log.count("no NVIDIA driver on this host") == 1
    assert body["provider"] == "CPUExecutionProvider" and "no NVIDIA driver" in (body["fallback"] or "")


def test_config_pbtxt_batching_is_honoured_and_settings_override_it(models_copy) -> None:
    cfg = models_copy / "lenet5_digits" / "config.pbtxt"
    text = cfg.read_text().replace("max_batch_size: 64", "max_batch_size: 3")
    batching = "dynamic_batching { preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 1500 }"
    cfg.write_text(text.replace("dynamic_batching { }", batching))
    with ready_client(models_dir=models_copy) as c:
        m = {x["name"]: x for x in c.get("/models").json()["models"]}
        assert m["lenet5_digits"]["max_batch_size"] == 3  # from its config.pbtxt
        assert m["lenet5_digits"]["preferred_batch_sizes"] == [2]  # Triton's dynamic_batching field, honoured
        assert m["resnet20_digits"]["preferred_batch_sizes"] == []
        assert c.app.state.registry.models["lenet5_digits"].batcher.max_delay_s == pytest.approx(0.0015)
        assert m["resnet20_digits"]["max_batch_size"] == 64  # its own config says 64
    with ready_client(models_dir=models_copy, batch_sizes={"lenet5_digits": 5}) as c:
        assert c.get("/models/lenet5_digits").json()["max_batch_size"] == 5  # the setting wins


def test_cors_is_off_by_default_and_configurable() -> None:
    pre = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with ready_client() as c:
        r = c.options("/classify", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    with ready_client(cors_origins="https://example.org") as c:
        r = c.options("/classify", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://example.org"
        assert (
            "access-control-allow-origin"
            not in c.options("/classify", headers=pre | {"Origin": "https://evil.test"}).headers
        )
