"""api_svc through the real mesh and Envoy, as a CompreFace client calls it: the demo API keys,
real photos, CompreFace's JSON shapes and error codes, request statistics."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import asyncpg
import grpc
import pytest

from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from tests.helpers.photos import FACE_API_COUNTS, astronaut_png
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_until
from tests.launcher.helpers import GROUP, MeshHandle, error

pytestmark = pytest.mark.integration

DETECT = "/api/v1/detection/detect"
VERIFY = "/api/v1/verification/verify"
VERIFY_EMBEDDINGS = "/api/v1/verification/embeddings/verify"


def post(
    mesh: MeshHandle,
    path: str,
    key: str | None,
    files: dict[str, bytes] | None = None,
    content_type: str | None = None,
    **kwargs,
) -> Reply:
    headers = {} if key is None else {"x-api-key": key}
    if content_type is not None:
        headers["content-type"] = content_type
    if files is not None:
        kwargs["files"] = {name: (f"{name}.png", data, "image/png") for name, data in files.items()}
    return call("POST", mesh.rest + path, headers=headers, **kwargs)


def test_astronaut_is_one_face_with_five_landmarks(mesh, keys, photos) -> None:
    reply = post(mesh, DETECT, keys["DETECTION"], {"file": photos["astronaut"]})
    assert reply.status == 200, reply.body
    [face] = reply.json()["result"]
    assert set(face) == {"box", "landmarks", "detector_score"}
    box = face["box"]
    assert 0.5 < box["probability"] <= 1 and round(box["probability"], 5) == box["probability"]
    assert 0 <= box["x_min"] < box["x_max"] <= 512 and 0 <= box["y_min"] < box["y_max"] <= 512
    assert len(face["landmarks"]) == 5
    for x, y in face["landmarks"]:
        assert box["x_min"] <= x <= box["x_max"] and box["y_min"] <= y <= box["y_max"]
    assert "plugins_versions" not in reply.json()


def test_json_base64_gives_the_same_face_as_multipart(mesh, keys, photos) -> None:
    document = {"file": base64.b64encode(photos["astronaut"]).decode()}
    as_json = post(mesh, DETECT, keys["DETECTION"], json=document)
    as_form = post(mesh, DETECT, keys["DETECTION"], {"file": photos["astronaut"]})
    assert as_json.status == 200, as_json.body
    assert as_json.json() == as_form.json()


def test_group_photo_has_every_face_and_limit_keeps_the_largest(mesh, keys, photos) -> None:
    key = keys["DETECTION"]
    faces = post(mesh, DETECT, key, {"file": photos[GROUP]}).json()["result"]
    assert len(faces) == FACE_API_COUNTS[GROUP]
    areas = [
        (f["box"]["x_max"] - f["box"]["x_min"]) * (f["box"]["y_max"] - f["box"]["y_min"])
        for f in faces
    ]
    limited = post(mesh, DETECT, key, {"file": photos[GROUP]}, query={"limit": "2"})
    assert [f["box"] for f in limited.json()["result"]] == [f["box"] for f in faces[:2]]
    assert areas[:2] == sorted(areas, reverse=True)[:2]


def test_plugins_and_status(mesh, keys, photos) -> None:
    query = {"face_plugins": "age,gender,pose,calculator", "status": "true"}
    reply = post(mesh, DETECT, keys["DETECTION"], {"file": photos["astronaut"]}, query=query)
    body = reply.json()
    [face] = body["result"]
    assert face["gender"]["value"] in ("male", "female")
    assert face["age"]["low"] <= face["age"]["high"]
    assert set(face["pose"]) == {"pitch", "roll", "yaw"}
    assert len(face["embedding"]) == 128
    assert {"detector", "calculator"} <= set(face["execution_time"])
    assert {"detector", "calculator", "age", "gender"} <= set(body["plugins_versions"])


def test_image_without_a_face_is_code_28(mesh, keys, photos) -> None:
    reply = post(mesh, DETECT, keys["DETECTION"], {"file": photos["blank"]})
    assert error(reply) == (400, 28)
    assert reply.json()["message"] == "No face is found in the given image"


def test_not_an_image_and_mask_are_clear_errors(mesh, keys) -> None:
    key = keys["DETECTION"]
    assert error(post(mesh, DETECT, key, {"file": b"not an image"})) == (400, 21)
    masked = post(mesh, DETECT, key, {"file": astronaut_png()}, query={"face_plugins": "mask"})
    assert error(masked) == (400, 26)
    assert "mask" in masked.json()["message"]


@pytest.mark.parametrize(
    ("path", "key_type"),
    [(DETECT, "RECOGNITION"), (DETECT, "VERIFICATION"), (VERIFY, "DETECTION")],
)
def test_a_key_of_the_wrong_type_is_refused(mesh, keys, photos, path, key_type) -> None:
    files = {
        "file": photos["astronaut"],
        "source_image": photos["astronaut"],
        "target_image": photos["astronaut"],
    }
    reply = post(mesh, path, keys[key_type], files)
    assert error(reply) == (404, 10)
    assert f"belongs to a {key_type} service" in reply.json()["message"]


def test_missing_malformed_and_unknown_keys(mesh, photos) -> None:
    files = {"file": photos["astronaut"]}
    assert error(post(mesh, DETECT, None, files)) == (400, 20)
    assert error(post(mesh, DETECT, "not-a-uuid", files)) == (400, 26)
    unknown = post(mesh, DETECT, "9f2b1c4e-8a3d-4f6b-9c1e-2d3f4a5b6c7d", files)
    assert error(unknown) == (404, 10)
    assert "not found" in unknown.json()["message"]


def verify(mesh, keys, source: bytes, target: bytes, **kwargs) -> Reply:
    return post(
        mesh,
        VERIFY,
        keys["VERIFICATION"],
        {"source_image": source, "target_image": target},
        **kwargs,
    )


def test_verify_the_same_person_mirrored_and_another_person(mesh, keys, photos) -> None:
    same = verify(mesh, keys, photos["astronaut"], photos["flipped"])
    assert same.status == 200, same.body
    [result] = same.json()["result"]
    assert set(result) == {"source_image_face", "face_matches"}
    [match] = result["face_matches"]
    assert match["similarity"] > 0.5
    others = verify(mesh, keys, photos["astronaut"], photos["other"]).json()["result"][0]
    assert len(others["face_matches"]) == FACE_API_COUNTS["sample1.jpg"]
    assert all(m["similarity"] < 0.5 for m in others["face_matches"])
    scores = [m["similarity"] for m in others["face_matches"]]
    assert scores == sorted(scores, reverse=True)


def test_verify_needs_one_source_face(mesh, keys, photos) -> None:
    assert error(verify(mesh, keys, photos[GROUP], photos["astronaut"])) == (400, 31)
    assert error(verify(mesh, keys, photos["blank"], photos["astronaut"])) == (400, 28)
    assert error(verify(mesh, keys, photos["astronaut"], photos["blank"])) == (400, 28)


def test_verify_embeddings_agrees_with_verify_images(mesh, keys, photos) -> None:
    query = {"face_plugins": "calculator"}
    result = verify(mesh, keys, photos["astronaut"], photos["flipped"], query=query).json()
    result = result["result"][0]
    source = result["source_image_face"]["embedding"]
    [match] = result["face_matches"]
    reply = post(
        mesh,
        VERIFY_EMBEDDINGS,
        keys["VERIFICATION"],
        json={"source": source, "targets": [[-v for v in source], match["embedding"]]},
    )
    assert reply.status == 200, reply.body
    first, second = reply.json()["result"]
    assert first["similarity"] == pytest.approx(match["similarity"], abs=2e-5)
    assert first["embedding"] == pytest.approx(match["embedding"])
    assert second["similarity"] < 0.01
    short = post(
        mesh,
        VERIFY_EMBEDDINGS,
        keys["VERIFICATION"],
        json={"source": source[:10], "targets": [source]},
    )
    assert error(short) == (400, 26)
    empty = post(
        mesh, VERIFY_EMBEDDINGS, keys["VERIFICATION"], json={"source": source, "targets": []}
    )
    assert error(empty) == (400, 37)


def test_body_limits(mesh, keys) -> None:
    key = keys["DETECTION"]
    too_big_file = post(mesh, DETECT, key, {"file": b"\xff\xd8" + bytes(6 * 1024 * 1024)})
    assert error(too_big_file) == (400, 26)
    assert "the limit is 5 MB" in too_big_file.json()["message"]
    too_big_body = post(
        mesh,
        DETECT,
        key,
        raw=bytes(11 * 1024 * 1024),
        content_type="image/jpeg",
    )
    assert error(too_big_body) == (413, 26)
    assert "10 MB" in too_big_body.json()["message"]


def test_grpc_clients_detect_through_envoy(mesh, keys, photos) -> None:
    request = pb.DetectFacesRequest(
        image={"content_type": "image/png", "data": photos["astronaut"]}
    )
    with grpc.insecure_channel(mesh.envoy_grpc) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        reply = stub.DetectFaces(request, metadata=[("x-api-key", keys["DETECTION"])], timeout=30)
        with pytest.raises(grpc.RpcError) as raised:
            stub.DetectFaces(request, timeout=30)
    assert len(reply.result) == 1 and len(reply.result[0].landmarks.values) == 5
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_successful_requests_are_counted_per_service(mesh, keys, photos) -> None:
    """On a VERIFICATION service of its own: api_svc writes counts in batches about a second
    apart, so requests of earlier tests on the demo service may still be on their way."""
    url = f"postgresql://postgres:@/postgres?host={mesh.data_dir}/pg"
    own_key = str(uuid.uuid4())

    async def add_service() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO services (id, application_id, name, type, api_key)"
                " SELECT $1, a.id, 'statistics test', 'VERIFICATION', $2"
                " FROM applications a ORDER BY a.created_at LIMIT 1",
                uuid.uuid4(),
                uuid.UUID(own_key),
            )
        finally:
            await conn.close()

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            value = await conn.fetchval(
                "SELECT coalesce(sum(st.request_count), 0) FROM service_stats st"
                " JOIN services s ON s.id = st.service_id WHERE s.api_key = $1::uuid",
                own_key,
            )
        finally:
            await conn.close()
        return int(value)

    asyncio.run(add_service())
    own = {"VERIFICATION": own_key}
    assert verify(mesh, own, photos["astronaut"], photos["flipped"]).status == 200
    assert error(verify(mesh, own, photos["blank"], photos["flipped"])) == (400, 28)
    wait_until(lambda: asyncio.run(count()) > 0, 10, "the request to be counted")
    assert asyncio.run(count()) == 1  # the failed request is not counted


def _finished(mesh: MeshHandle, service: str) -> list[dict]:
    """rpc_finished events of every node of ``service`` (logs/<service>-<i>.log)."""
    logs = sorted((mesh.data_dir / "logs").glob(f"{service}*.log"))
    assert logs, f"no log of {service}"
    lines = [line for path in logs for line in path.read_text().splitlines()]
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e.get("event") == "rpc_finished"]


def test_one_request_id_follows_a_request_through_envoy_api_svc_and_embed_svc(
    mesh, keys, photos
) -> None:
    sent = f"trace-{uuid.uuid4().hex}"
    reply = call(
        "POST",
        mesh.rest + DETECT,
        headers={"x-api-key": keys["DETECTION"], "x-request-id": sent},
        files={"file": ("a.png", photos["astronaut"], "image/png")},
    )
    assert reply.status == 200, reply.body
    api: list[dict] = []
    embed: list[dict] = []

    def both_logged() -> bool:
        api[:] = [e for e in _finished(mesh, "api_svc") if e["request_id"] == sent]
        embed[:] = [e for e in _finished(mesh, "embed_svc") if e["request_id"] == sent]
        return bool(api and embed)

    wait_until(both_logged, 10, "api_svc and embed_svc to log the request")
    assert [(e["rpc"], e["code"]) for e in api] == [
        ("/facegrid.recognition.v1.RecognitionService/DetectFaces", "OK")
    ]
    assert "/facegrid.embedding.v1.EmbeddingService/AnalyzeImages" in [e["rpc"] for e in embed]
