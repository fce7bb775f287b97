"""The committed protobuf code matches what protos/ generates today."""

from __future__ import annotations

from pathlib import Path

from appeals_devstack import protogen


def test_committed_generated_code_is_not_stale(tmp_path: Path) -> None:
    fresh = {path.name: path.read_bytes() for path in protogen.generate(tmp_path)}
    committed_dir = protogen.GENERATED_ROOT / protogen.PACKAGE_DIR
    committed = {path.name: path.read_bytes() for path in committed_dir.iterdir() if path.is_file()}
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    assert not stale, f"generated code is stale, run `make proto` and commit: {stale}"


def test_committed_openapi_document_is_current() -> None:
    from services.intake import openapi

    assert openapi.DOCUMENT.read_text() == openapi.render(), (
        "services/intake/openapi.json is stale: run `make openapi` and commit"
    )


def test_every_intake_operation_has_examples_and_documents_its_errors() -> None:
    from services.intake import openapi

    paths = openapi.document()["paths"]
    submit = paths["/v1/appeals"]["post"]
    documented = set(submit["responses"])
    assert {"202", "400", "401", "403", "409", "413", "422", "429", "503"} <= documented
    body = submit["requestBody"]["content"]["application/json"]
    assert body.get("examples") or body["schema"].get("examples")
    for path in ("/v1/appeals", "/v1/appeals/{appeal_id}", "/v1/ban-evasion/identifiers"):
        for operation in paths[path].values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    problem = response["content"]["application/problem+json"]
                    assert problem["example"]["status"] == int(status)
