"""Credential attempts are throttled per account and per client address, in PostgreSQL (two
admin_svc nodes share the count), with the same answer and work for unknown and known accounts;
AddMember invites unknown emails (bound at sign-up); only global administrators list users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from admin_svc.config import load_config
from admin_svc.server import create_server
from admin_svc.throttle import CLIENT_ADDRESS_KEY, client_address
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.admin.v1 import admin_service_pb2_grpc
from facegrid.errors import error_info
from tests.admin_svc.helpers import Admin, FakeEmbed, admin_env, rpc_error

pytestmark = pytest.mark.integration

ACCOUNT_LIMIT = 3
ADDRESS_LIMIT = 8


@dataclass
class Node:
    """One admin_svc node of a pair sharing a database."""

    stub: admin_service_pb2_grpc.AdminServiceStub
    hasher_calls: list[str]


@pytest.fixture
async def nodes(db_url: str) -> AsyncIterator[list[Node]]:
    """Two admin_svc nodes on one database with small limits; each counts its password checks."""
    env = admin_env(
        db_url,
        FACEGRID_SIGNIN_ACCOUNT_ATTEMPTS=str(ACCOUNT_LIMIT),
        FACEGRID_SIGNIN_ADDRESS_ATTEMPTS=str(ADDRESS_LIMIT),
    )
    started = []
    for _ in range(2):
        server = await create_server(load_config(env), embed=FakeEmbed())
        calls: list[str] = []
        hasher = server.deps.hasher
        verify, hash_ = hasher.verify, hasher.hash

        async def counted_verify(stored: str | None, password: str, calls=calls, v=verify) -> bool:
            calls.append("verify")
            return await v(stored, password)

        async def counted_hash(password: str, calls=calls, h=hash_) -> str:
            calls.append("hash")
            return await h(password)

        object.__setattr__(hasher, "verify", counted_verify)
        object.__setattr__(hasher, "hash", counted_hash)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.running.port}")
        stub = admin_service_pb2_grpc.AdminServiceStub(channel)
        started.append((server, channel, Node(stub, calls)))
    yield [node for _, _, node in started]
    for server, channel, _ in started:
        await channel.close()
        await server.stop(0)


def _from(address: str) -> tuple[tuple[str, str]]:
    return ((CLIENT_ADDRESS_KEY, address),)


async def _sign_in(node: Node, email: str, password: str, address: str) -> grpc.StatusCode:
    try:
        await node.stub.SignIn(
            pb.SignInRequest(email=email, password=password), metadata=_from(address)
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _sign_up(node: Node, email: str, address: str = "10.0.0.1") -> pb.User:
    reply = await node.stub.SignUp(
        pb.SignUpRequest(email=email, password="password-1", first_name="Test"),
        metadata=_from(address),
    )
    return reply.user


async def test_an_account_is_throttled_across_nodes_alike_known_or_not(nodes: list[Node]) -> None:
    await _sign_up(nodes[0], "ann@example.com")
    for email in ("ann@example.com", "nobody@example.com"):
        codes = [
            await _sign_in(nodes[i % 2], email, "wrong-password", f"10.1.0.{i}")
            for i in range(ACCOUNT_LIMIT + 2)
        ]
        assert (
            codes
            == [grpc.StatusCode.UNAUTHENTICATED] * ACCOUNT_LIMIT
            + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        ), email
    # throttled attempts do no password work; the right password is refused too, for now
    before = sum(len(n.hasher_calls) for n in nodes)
    assert await _sign_in(nodes[1], "ann@example.com", "password-1", "10.2.0.1") == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert sum(len(n.hasher_calls) for n in nodes) == before


async def test_the_throttled_answer_says_when_to_come_back(nodes: list[Node]) -> None:
    for _ in range(ACCOUNT_LIMIT):
        await _sign_in(nodes[0], "ann@example.com", "wrong-password", "10.3.0.1")
    error = await rpc_error(
        nodes[0].stub.SignIn(
            pb.SignInRequest(email="ann@example.com", password="x"), metadata=_from("10.3.0.1")
        )
    )
    info = error_info(error)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info is not None and info.reason == "SIGN_IN_THROTTLED"
    retry = int(info.metadata["retry_after_s"])
    assert 0 < retry <= 901
    assert f"try again in {retry} s" in (error.details() or "")
    assert dict(error.initial_metadata())["retry-after"] == str(retry)


async def test_a_success_starts_the_account_afresh(nodes: list[Node]) -> None:
    await _sign_up(nodes[0], "ann@example.com")
    for _ in range(ACCOUNT_LIMIT - 1):
        await _sign_in(nodes[0], "ann@example.com", "wrong-password", "10.4.0.1")
    assert await _sign_in(nodes[1], "ann@example.com", "password-1", "10.4.0.1") == (
        grpc.StatusCode.OK
    )
    codes = [
        await _sign_in(nodes[0], "ann@example.com", "wrong-password", "10.4.0.1")
        for _ in range(ACCOUNT_LIMIT)
    ]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * ACCOUNT_LIMIT


async def test_an_address_is_throttled_over_many_accounts(nodes: list[Node]) -> None:
    codes = [
        await _sign_in(nodes[i % 2], f"user{i}@example.com", "wrong-password", "192.0.2.9")
        for i in range(ADDRESS_LIMIT + 1)
    ]
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert set(codes[:-1]) == {grpc.StatusCode.UNAUTHENTICATED}
    # another address is not affected
    assert await _sign_in(nodes[0], "user0@example.com", "x", "192.0.2.10") == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_unknown_and_known_accounts_cost_the_same_work(nodes: list[Node]) -> None:
    await _sign_up(nodes[0], "ann@example.com")
    node = nodes[1]
    node.hasher_calls.clear()
    await _sign_in(node, "ann@example.com", "wrong-password", "10.5.0.1")
    known = list(node.hasher_calls)
    node.hasher_calls.clear()
    await _sign_in(node, "nobody@example.com", "wrong-password", "10.5.0.2")
    assert node.hasher_calls == known == ["verify"]
    node.hasher_calls.clear()
    new = await _sign_up(node, "new@example.com")
    new_work = list(node.hasher_calls)
    node.hasher_calls.clear()
    taken = await _sign_up(node, "ann@example.com")
    assert node.hasher_calls == new_work == ["hash"]
    assert (taken.global_role, taken.first_name) == (new.global_role, new.first_name)


async def test_sign_ups_count_against_the_address(nodes: list[Node]) -> None:
    for i in range(ADDRESS_LIMIT):
        await _sign_up(nodes[i % 2], f"user{i}@example.com", "198.51.100.4")
    error = await rpc_error(_sign_up(nodes[0], "one-more@example.com", "198.51.100.4"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_client_address_is_envoys_header_else_the_peer() -> None:
    assert client_address(((CLIENT_ADDRESS_KEY, "203.0.113.5"),), "ipv4:127.0.0.1:5") == (
        "203.0.113.5"
    )
    assert client_address((), "ipv4:127.0.0.1:40000") == "127.0.0.1"
    assert client_address((), "ipv6:[::1]:40000") == "::1"
    assert client_address((), "unix:/tmp/socket") is None


async def test_an_invited_email_becomes_a_member_when_it_signs_up(admin: Admin) -> None:
    _, owner = await admin.user("owner@example.com")
    app = await admin.create_app(owner, "team")
    invited = await admin.stub.AddMember(
        pb.AddMemberRequest(
            application_id=app.application_id,
            email="New@Example.com",
            role=pb.APPLICATION_ROLE_ADMINISTRATOR,
        ),
        metadata=owner,
    )
    assert (invited.member.pending, invited.member.user.user_id) == (True, "")
    again = await rpc_error(
        admin.stub.AddMember(
            pb.AddMemberRequest(application_id=app.application_id, email="new@example.com"),
            metadata=owner,
        )
    )
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS  # as for a member
    user, auth = await admin.user("new@example.com")
    members = await admin.stub.ListMembers(
        pb.ListMembersRequest(application_id=app.application_id), metadata=auth
    )
    mine = [m for m in members.members if m.user.email == "new@example.com"]
    assert [(m.user.user_id, m.role, m.pending) for m in mine] == [
        (user.user_id, pb.APPLICATION_ROLE_ADMINISTRATOR, False)
    ]
    conn = await asyncpg.connect(admin.db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM app_invitations") == 0
    finally:
        await conn.close()


async def test_a_pending_invitation_is_cancelled_by_its_email(admin: Admin) -> None:
    _, owner = await admin.user("owner@example.com")
    app = await admin.create_app(owner, "team")
    await admin.stub.AddMember(
        pb.AddMemberRequest(application_id=app.application_id, email="later@example.com"),
        metadata=owner,
    )
    await admin.stub.RemoveMember(
        pb.RemoveMemberRequest(application_id=app.application_id, user_id="later@example.com"),
        metadata=owner,
    )
    members = await admin.stub.ListMembers(
        pb.ListMembersRequest(application_id=app.application_id), metadata=owner
    )
    assert [m.user.email for m in members.members] == ["owner@example.com"]
    gone = await rpc_error(
        admin.stub.RemoveMember(
            pb.RemoveMemberRequest(application_id=app.application_id, user_id="later@example.com"),
            metadata=owner,
        )
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_only_global_administrators_list_users(admin: Admin) -> None:
    _, owner = await admin.user("owner@example.com")
    _, user = await admin.user("user@example.com")
    listed = await admin.stub.ListUsers(pb.ListUsersRequest(), metadata=owner)
    assert len(listed.users) == 2
    denied = await rpc_error(admin.stub.ListUsers(pb.ListUsersRequest(), metadata=user))
    info = error_info(denied)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info is not None and info.reason == "INSUFFICIENT_ROLE"


@pytest.mark.parametrize(
    "email", ["a\x00b@example.com", "ann@exa\x1fmple.com", "ann@example.com\x7f", "x" * 255]
)
async def test_an_email_with_control_characters_is_a_400_not_a_500(
    admin: Admin, email: str
) -> None:
    for call in (
        admin.stub.SignIn(pb.SignInRequest(email=email, password="password-1")),
        admin.stub.SignUp(pb.SignUpRequest(email=email, password="password-1", first_name="A")),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
