"""Property-based fuzzing of the REST surface through the real Envoy of a real mesh
(hypothesis; fixed example count, derandomised): requests built from the route table with
hostile path parameters, query strings, headers and bodies, with no key, a made-up key, or a
real key on calls that only read. Every answer is a success or a CompreFace-shaped client error
or 503 - never a 5xx from a bug, never an internal name - and nothing is written.

(Schemathesis would fit once the OpenAPI document of the console's work is on main; until then
the route table of gateway/limits.py is the schema.)"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.limits import ROUTES, Kind, Route
from gateway.render import RECOGNITION_READS
from tests.helpers.rest_client import Reply, call
from tests.launcher.helpers import MeshHandle
from tests.launcher.test_mesh_hostile import LEAKS, _snapshot

pytestmark = pytest.mark.integration

#: Credential routes are left out: the sign-in throttle would count the fuzzer's attempts
#: against the address every test shares (their fields are fuzzed in test_fuzz_parsers.py).
FUZZED = [r for r in ROUTES if r.kind is not Kind.CREDENTIALS and r.rpc != "BulkAddFaces"]
READ_ONLY = {r.rpc for r in FUZZED if r.method == "GET" or r.rpc in RECOGNITION_READS}
QUERY_NAMES = [
    "subject",
    "page",
    "size",
    "limit",
    "prediction_count",
    "det_prob_threshold",
    "face_plugins",
    "status",
    "detect_faces",
    "similarity_threshold",
]
NASTY = st.sampled_from(
    ["%00", "%FF", "%C0%AF", "..", "%2F", "a%0Db", "%20", "x" * 60, "%E2%80%AE", "%F0%9F%98%80"]
)
CONTENT_TYPES = ["application/json", "image/png", "text/plain", "multipart/form-data; boundary=z"]
TEXT = st.one_of(NASTY, st.text(max_size=30).map(lambda t: urllib.parse.quote(t, safe="")))


@st.composite
def requests(draw: st.DrawFn) -> tuple[Route, str, str, dict[str, str], bytes]:
    route = draw(st.sampled_from(FUZZED))
    path = re.sub(r"\{[^}]+\}", lambda _: draw(TEXT) or "x", route.template)
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), TEXT, max_size=4))
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    headers = {"content-type": draw(st.sampled_from(CONTENT_TYPES))}
    key = draw(st.sampled_from(["none", "made-up", "garbage", "real"]))
    body = draw(
        st.one_of(
            st.binary(max_size=2048),
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4)
                ),
                max_leaves=20,
            ).map(lambda doc: json.dumps(doc).encode()),
        )
    )
    return route, path, key, headers, body


def _key_for(route: Route, kind: str, keys: dict[str, str]) -> str | None:
    if kind == "none":
        return None
    if kind == "made-up":
        return str(uuid.uuid4())
    if kind == "garbage":
        return "not-a-key"
    if route.rpc not in READ_ONLY:
        return str(uuid.uuid4())  # a real key only where nothing can be written
    prefix = route.template.split("/")[3].upper()
    return keys.get("VERIFICATION" if prefix == "VERIFICATION" else prefix, str(uuid.uuid4()))


def test_the_rest_surface_answers_every_fuzzed_request_cleanly(
    mesh: MeshHandle, keys: dict[str, str]
) -> None:
    dsn = f"postgresql://postgres:@/postgres?host={mesh.data_dir / 'pg'}"
    before = asyncio.run(_snapshot(dsn))

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests())
    def check(request: tuple[Route, str, str, dict[str, str], bytes]) -> None:
        route, path, kind, headers, body = request
        key = _key_for(route, kind, keys)
        if key is not None:
            headers = {**headers, "x-api-key": key}
        data = body if route.method in ("POST", "PUT", "PATCH") else None
        reply: Reply = call(route.method, mesh.rest + path, raw=data, headers=headers)
        assert reply.status < 500 or reply.status == 503, (route.rpc, path, reply.body[:300])
        if reply.status >= 400 and reply.body:
            document = reply.json()
            assert set(document) == {"message", "code"}, document
            assert isinstance(document["code"], int)
            assert not LEAKS.search(document["message"]), document

    check()
    assert asyncio.run(_snapshot(dsn)) == before  # nothing was written
