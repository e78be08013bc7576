"""Every example in the OpenAPI schema is a real, working request: what /docs' "Try it out" sends."""

from __future__ import annotations


def _json_examples(schema: dict) -> list[tuple[str, dict]]:
    out = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if method == "post" and "example" in content:
                out.append((path, content["example"]))
    return out


def test_every_json_example_in_the_schema_succeeds(client) -> None:
    schema = client.get("/openapi.json").json()
    examples = _json_examples(schema)
    assert {p for p, _ in examples} >= {"/classify", "/segment", "/denoise", "/nowcast"}
    for path, body in examples:
        r = client.post(path, json=body)
        assert r.status_code == 200, (path, r.text[:300])
    top = client.post("/classify", json=dict(examples)["/classify"]).json()["results"][0]["predictions"][0]
    assert top["label"] == "7"  # the example is the digit it says it is
