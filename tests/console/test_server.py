"""The console's static file server: the build folder only, with its caching and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from console.config import DEFAULT_ROOT, load_config
from console.server import SECURITY_HEADERS, ConsoleNotBuilt, create_app, file_in


@pytest.fixture
def root(tmp_path: Path) -> Path:
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text("<!doctype html><title>console</title>")
    (build / "assets" / "index-abc123.js").write_text("console.log(1)")
    (build / "openapi.json").write_text('{"openapi": "3.1.0"}')
    (tmp_path / "secret.txt").write_text("outside the build")
    (build / "link.txt").symlink_to(tmp_path / "secret.txt")
    return build


@pytest.fixture
async def client(root: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(create_app(root))) as test_client:
        yield test_client


async def test_index_is_served_at_the_root_and_revalidated(client: TestClient) -> None:
    reply = await client.get("/")
    assert reply.status == 200
    assert "<title>console</title>" in await reply.text()
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Cache-Control"] == "no-cache"
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers[name] == value


async def test_hashed_assets_are_cached_and_the_openapi_document_is_json(
    client: TestClient,
) -> None:
    asset = await client.get("/assets/index-abc123.js")
    assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"]
    document = await client.get("/openapi.json")
    assert document.status == 200
    assert document.headers["Content-Type"] == "application/json"
    assert (await document.json())["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    "path", ["/secret.txt", "/../secret.txt", "/%2e%2e/secret.txt", "/assets/", "/link.txt", "/x"]
)
async def test_nothing_outside_the_build_folder_is_served(client: TestClient, path: str) -> None:
    reply = await client.get(path)
    assert reply.status == 404
    assert "outside the build" not in await reply.text()
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/../secret.txt", "/assets/../../secret.txt", "/link.txt", "/"])
def test_paths_resolving_outside_the_build_folder_name_no_file(root: Path, path: str) -> None:
    found = file_in(root.resolve(), path)
    assert found is None or found == root.resolve() / "index.html"
    assert file_in(root.resolve(), "/") == root.resolve() / "index.html"


async def test_health_answers_ok(client: TestClient) -> None:
    reply = await client.get("/healthz")
    assert reply.status == 200 and await reply.text() == "ok\n"


def test_a_missing_build_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConsoleNotBuilt, match="make console"):
        create_app(tmp_path)


def test_configuration_defaults_and_overrides(tmp_path: Path) -> None:
    config = load_config({})
    assert (config.host, config.port, config.root) == ("127.0.0.1", 8300, DEFAULT_ROOT)
    config = load_config({"FACEGRID_CONSOLE_PORT": "9300", "FACEGRID_CONSOLE_ROOT": str(tmp_path)})
    assert (config.port, config.root) == (9300, tmp_path)
