"""The OpenAPI document made from the descriptor set: valid, complete, and shaped like the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from openapi_spec_validator import validate

from gateway.openapi import build_document, load_descriptor_set
from gateway.render import PUBLIC_SERVICES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(load_descriptor_set(REPO / "gateway" / "descriptor.pb"))


def op(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(document["paths"][path][method])


def params(operation: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == where}


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_http_rule_of_the_public_services_is_an_operation(document: dict[str, Any]) -> None:
    descriptors = load_descriptor_set(REPO / "gateway" / "descriptor.pb")
    expected = set()
    for file in descriptors.file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in PUBLIC_SERVICES:
                continue
            for method in service.method:
                if method.options.HasExtension(annotations_pb2.http):
                    expected.add(method.name)
    operations = {
        o["operationId"] for methods in document["paths"].values() for o in methods.values()
    }
    assert operations == expected
    assert len(expected) > 40
    assert {tag["name"] for tag in document["tags"]} == {"RecognitionService", "AdminService"}
    assert all(p.startswith("/api/v1/") for p in document["paths"])


def test_image_bodies_are_multipart_with_their_file_parts(document: dict[str, Any]) -> None:
    recognize = op(document, "post", "/api/v1/recognition/recognize")["requestBody"]["content"]
    form = recognize["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) == {"file"}
    assert recognize["application/json"]["schema"]["properties"]["file"]["contentEncoding"] == (
        "base64"
    )
    assert "image/*" in recognize
    verify = op(document, "post", "/api/v1/verification/verify")["requestBody"]["content"]
    form = verify["multipart/form-data"]["schema"]
    assert form["required"] == ["source_image", "target_image"]
    assert "image/*" not in verify
    # the body field is not also a query parameter; the other request fields are
    query = params(op(document, "post", "/api/v1/recognition/recognize"), "query")
    assert "image" not in query
    assert {"limit", "prediction_count", "face_plugins", "similarity_threshold"} <= set(query)
    assert query["prediction_count"]["schema"] == {"type": "integer", "format": "int32"}


def test_path_fields_are_path_parameters_and_the_rest_is_the_json_body(
    document: dict[str, Any],
) -> None:
    rename = op(document, "put", "/api/v1/recognition/subjects/{current_subject}")
    assert params(rename, "path")["current_subject"]["required"] is True
    body = rename["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"subject"}
    rotate = op(
        document, "post", "/api/v1/admin/apps/{application_id}/services/{service_id}/api-key/rotate"
    )
    assert set(params(rotate, "path")) == {"application_id", "service_id"}
    delete_by_ids = op(document, "post", "/api/v1/recognition/faces/delete")
    schema = delete_by_ids["requestBody"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and schema["items"]["type"] == "string"


def test_responses_statuses_and_security_follow_the_protos(document: dict[str, Any]) -> None:
    add_face = op(document, "post", "/api/v1/recognition/faces")
    assert "201" in add_face["responses"] and add_face["security"] == [{"ApiKey": []}]
    image = op(document, "get", "/api/v1/recognition/faces/{image_id}/img")
    assert "image/*" in image["responses"]["200"]["content"]
    assert op(document, "post", "/api/v1/admin/auth/signin")["security"] == []
    assert op(document, "post", "/api/v1/admin/auth/refresh")["security"] == []
    assert op(document, "get", "/api/v1/admin/apps")["security"] == [{"Bearer": []}]
    assert "201" in op(document, "post", "/api/v1/admin/apps")["responses"]
    error = add_face["responses"]["default"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


def test_messages_use_proto_field_names_enum_names_and_json_forms(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    service = schemas["facegrid.admin.v1.Service"]["properties"]
    assert {"api_key", "subject_count", "writes_blocked"} <= set(service)
    assert service["create_time"]["type"] == "string"
    assert service["create_time"]["format"] == "date-time"
    service_type = schemas["facegrid.common.v1.ServiceType"]
    assert "SERVICE_TYPE_RECOGNITION" in service_type["enum"]
    face = schemas["facegrid.recognition.v1.RecognizedFace"]["properties"]
    assert face["landmarks"]["type"] == "array"
    assert face["subjects"]["items"] == {
        "$ref": "#/components/schemas/facegrid.recognition.v1.SubjectSimilarity"
    }
    assert "Face box in source-image pixels" in face["box"]["description"]
