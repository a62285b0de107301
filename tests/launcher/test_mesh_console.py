"""The web console in a real headless Chromium (Debian's, driven by Playwright) against the real
mesh through Envoy: sign-up to key rotation as a person does it, the faces drawn on group photos
checked against the API and the photos' manifest, and axe-core's accessibility rules at phone
and laptop widths. Screenshots of the main screens go to build/screenshots (or
FACEGRID_SCREENSHOT_DIR).

The tests share one browser page and run in file order, each step building on the last.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import call
from tests.launcher.helpers import MeshHandle, sql

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "console" / "web" / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots go to build/screenshots; `FACEGRID_SCREENSHOT_DIR=docs/console make test` refreshes
# the committed ones (a plain run leaves the tracked files alone).
SHOTS = REPO / os.environ.get("FACEGRID_SCREENSHOT_DIR", "build/screenshots")
PASSWORD = "correct horse battery staple"
PEOPLE = ("biden", "obama", "rose", "kit")
GROUPS = ("groups/01_3faces.jpg", "groups/03_2faces.jpg")
#: What the playground asks by default (the API call the test repeats to compare).
RECOGNIZE_QUERY = {
    "face_plugins": "age,gender,pose,landmarks",
    "prediction_count": "1",
    "rank_by_subject": "true",
    "similarity_threshold": "0.5",
}
#: Chromium flags for a closed network, as root (see ../shared/PLATFORM.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: A step waits at most this long for the page (face calls take well under a second each).
STEP_TIMEOUT_MS = 30_000


@dataclass
class Console:
    """The browser page and what the steps learnt so far."""

    page: Page
    mesh: MeshHandle
    faces: Path
    email: str = field(default_factory=lambda: f"console-{uuid.uuid4().hex[:8]}@example.com")
    app_name: str = field(default_factory=lambda: f"Console {uuid.uuid4().hex[:6]}")
    keys: dict[str, str] = field(default_factory=dict)
    """API key by service name."""

    def go(self, fragment: str) -> None:
        self.page.goto(f"{self.mesh.rest}/{fragment}")

    def stored_session(self) -> dict[str, Any]:
        raw = self.page.evaluate("localStorage.getItem('facegrid.session')")
        return dict(json.loads(raw)) if raw else {}

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.jpg"
        self.page.screenshot(path=str(path), full_page=True, type="jpeg", quality=70)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(browser: Browser, mesh: MeshHandle) -> Iterator[Console]:
    # bypass_csp: axe-core is injected as an inline script, which the console's policy forbids
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield Console(page, mesh, shared_faces())
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def open_service(console: Console, name: str, tab: str) -> None:
    page = console.page
    console.go("#/apps")
    page.get_by_role("link", name=console.app_name).click()
    card = page.get_by_role("article", name=name)
    card.get_by_role("link", name=tab).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def test_sign_up_sign_out_and_sign_in(console: Console) -> None:
    page = console.page
    console.go("#/signup")
    page.get_by_label("First name").fill("Ann")
    page.get_by_label("Last name").fill("Lee")
    page.get_by_label("Email").fill(console.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(console.email)
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    # The session's first sign-up is the OWNER; later ones are USERs, who may not create
    # applications: make this one an ADMINISTRATOR, which takes effect at the next sign-in.
    # (in a thread of its own: Playwright's sync API runs an event loop in this one)
    promote = (
        "UPDATE users SET global_role = 'ADMINISTRATOR' WHERE email = $1 AND global_role = 'USER'"
    )
    with ThreadPoolExecutor(1) as pool:
        pool.submit(sql, console.mesh, promote, console.email).result()
    old_refresh = console.stored_session()["refreshToken"]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert console.stored_session() == {}
    refused = call(
        "POST",
        f"{console.mesh.rest}/api/v1/admin/auth/refresh",
        json={"refresh_token": old_refresh},
    )
    assert refused.status == 401, "signing out must revoke the session on the server"

    page.get_by_label("Email").fill(console.email)
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(console.email)
    expect(page.get_by_test_id("signed-in-as")).not_to_contain_text("(User)")


def test_an_expired_access_token_is_refreshed(console: Console) -> None:
    page = console.page
    stored = console.stored_session()
    refresh = stored["refreshToken"]
    page.evaluate(
        "(s) => localStorage.setItem('facegrid.session', JSON.stringify(s))",
        {**stored, "accessToken": "expired", "accessExpiresAt": 0},
    )
    page.reload()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    expect(page.get_by_role("button", name="Create application")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    page.wait_for_function(
        """(old) => {
            const s = JSON.parse(localStorage.getItem('facegrid.session') || '{}');
            return s.refreshToken && s.refreshToken !== old && s.accessToken !== 'expired';
        }""",
        arg=refresh,
    )
    renewed = console.stored_session()
    assert renewed["refreshToken"] != refresh and renewed["accessToken"] != "expired"


def test_create_an_application_and_services(console: Console) -> None:
    page = console.page
    page.get_by_label("New application name").fill(console.app_name)
    page.get_by_role("button", name="Create application").click()
    page.get_by_role("link", name=console.app_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(console.app_name)
    for name, kind in (("people", "Recognition"), ("pairs", "Verification")):
        page.get_by_label("New service name").fill(name)
        page.get_by_label("Type").select_option(label=kind)
        page.get_by_role("button", name="Create service").click()
        card = page.get_by_role("article", name=name)
        expect(card).to_contain_text(kind)
        console.keys[name] = card.get_by_test_id("api-key").input_value()
    listed = call(
        "GET",
        f"{console.mesh.rest}/api/v1/recognition/subjects",
        headers={"x-api-key": console.keys["people"]},
    )
    assert listed.status == 200 and listed.json() == {"subjects": []}
    page.get_by_label("New service name").fill("people")
    page.get_by_role("button", name="Create service").click()
    expect(page.get_by_role("alert")).to_have_text(
        "the application already has a service with this name"
    )
    console.shot("application")


def admin_api(console: Console, method: str, path: str, **kwargs: Any) -> Any:
    """An admin REST call with the console's own session; answers its JSON (2xx asserted)."""
    token = console.stored_session()["accessToken"]
    reply = call(
        method,
        f"{console.mesh.rest}/api/v1/admin{path}",
        headers={"authorization": f"Bearer {token}"},
        **kwargs,
    )
    assert 200 <= reply.status < 300, reply.body
    return reply.json()


def app_id(console: Console) -> str:
    apps = admin_api(console, "GET", "/apps")["applications"]
    return str(next(a["application_id"] for a in apps if a["name"] == console.app_name))


def member_row(page: Page, email: str) -> Locator:
    return page.locator("tr[data-email]").filter(
        has=page.get_by_role("cell", name=email, exact=True)
    )


def invite(page: Page, email: str, role: str) -> None:
    form = page.get_by_role("form", name="Add a member")
    form.get_by_label("Email to add or invite").fill(email)
    form.get_by_label("Role").select_option(label=role)
    form.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status").filter(has_text="invited")).to_have_text(
        f"{email} invited: they become a member when they sign up with this email."
    )


def test_an_email_without_an_account_is_invited_pending(console: Console) -> None:
    """AddMember of an unknown email lists a pending member (no user id): the console shows it
    as invited, with its role, offers only to revoke it (the API cannot change an invitation's
    role), revokes it by email, and once that person signs up the row is a member whose role
    change and removal call the API with the new user id."""
    page = console.page
    console.go("#/apps")
    page.get_by_role("link", name=console.app_name).click()
    tag = uuid.uuid4().hex[:8]
    joins = f"joins+{tag}@example.com"
    revoked = f"a/b?c#d%e+{tag}@example.com"  # every character the member path must escape
    waits = f"waits+{tag}@example.com"  # left pending: the accessibility checks see its row
    for email, role in ((joins, "Administrator"), (revoked, "User"), (waits, "User")):
        invite(page, email, role)
    application = app_id(console)
    listed = admin_api(console, "GET", f"/apps/{application}/members")["members"]
    pending = {m["user"]["email"]: m for m in listed if m["pending"]}
    assert {e: (m["user"]["user_id"], m["role"]) for e, m in pending.items()} == {
        joins: ("", "APPLICATION_ROLE_ADMINISTRATOR"),
        revoked: ("", "APPLICATION_ROLE_USER"),
        waits: ("", "APPLICATION_ROLE_USER"),
    }
    for email, role in ((joins, "Administrator"), (revoked, "User"), (waits, "User")):
        row = member_row(page, email)
        expect(row).to_have_attribute("data-state", "invited")
        expect(row.get_by_test_id("member-state")).to_have_text("Invited")
        expect(row.get_by_role("cell", name=role, exact=True)).to_be_visible()
        expect(row).to_contain_text("no account yet")
        expect(row.get_by_role("combobox")).to_have_count(0)  # its role cannot be changed
        expect(row.get_by_role("button")).to_have_count(1)
        expect(row.get_by_role("button", name=f"Revoke invitation of {email}")).to_be_visible()

    row = member_row(page, revoked)
    row.get_by_role("button", name=f"Revoke invitation of {revoked}").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        row.get_by_role("button", name=f"Revoke invitation of {revoked}").click()
    path = urllib.parse.urlsplit(answer.value.url).path
    assert path.startswith(f"/api/v1/admin/apps/{application}/members/")
    assert urllib.parse.unquote(path.rsplit("/", 1)[1]) == revoked
    assert answer.value.status == 200
    expect(page.get_by_role("status").filter(has_text="revoked")).to_have_text(
        f"The invitation of {revoked} is revoked."
    )
    expect(member_row(page, revoked)).to_have_count(0)
    listed = admin_api(console, "GET", f"/apps/{application}/members")["members"]
    assert sorted(m["user"]["email"] for m in listed if m["pending"]) == [joins, waits]
    with ThreadPoolExecutor(1) as pool:
        stored = pool.submit(
            sql, console.mesh, "SELECT email FROM app_invitations WHERE email LIKE $1", f"%{tag}%"
        ).result()
    assert sorted(r["email"] for r in stored) == [joins, waits]

    signed_up = call(
        "POST",
        f"{console.mesh.rest}/api/v1/admin/auth/signup",
        json={"email": joins, "password": PASSWORD, "first_name": "Jo", "last_name": "Ins"},
    )
    assert signed_up.status == 201, signed_up.body
    user_id = signed_up.json()["user"]["user_id"]
    page.reload()
    row = member_row(page, joins)
    expect(row).to_have_attribute("data-state", "member")
    expect(row.get_by_test_id("member-state")).to_have_text("Member")
    expect(row).to_contain_text("Jo Ins")
    role_box = row.get_by_role("combobox", name=f"Role of {joins}")
    expect(role_box).to_have_value("APPLICATION_ROLE_ADMINISTRATOR")
    with page.expect_response(lambda r: r.request.method == "PUT") as answer:
        role_box.select_option(label="User")
    assert urllib.parse.urlsplit(answer.value.url).path == (
        f"/api/v1/admin/apps/{application}/members/{user_id}"
    )
    assert answer.value.status == 200
    expect(page.get_by_role("status").filter(has_text="is now")).to_have_text(
        f"{joins} is now User."
    )
    listed = admin_api(console, "GET", f"/apps/{application}/members")["members"]
    assert [
        (m["user"]["user_id"], m["role"], m["pending"])
        for m in listed
        if m["user"]["email"] == joins
    ] == [(user_id, "APPLICATION_ROLE_USER", False)]
    row.get_by_role("button", name=f"Remove {joins}").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        row.get_by_role("button", name=f"Remove {joins}").click()
    assert urllib.parse.urlsplit(answer.value.url).path == (
        f"/api/v1/admin/apps/{application}/members/{user_id}"
    )
    assert answer.value.status == 200
    expect(member_row(page, joins)).to_have_count(0)
    expect(member_row(page, waits)).to_have_attribute("data-state", "invited")
    listed = admin_api(console, "GET", f"/apps/{application}/members")["members"]
    assert joins not in {m["user"]["email"] for m in listed}


def test_upload_photos_and_browse_the_collection(console: Console) -> None:
    page = console.page
    open_service(console, "people", "Collection")
    for person in PEOPLE:
        files = sorted((console.faces / person).glob("*.jpg"))
        page.get_by_label("Subject (new or existing)").fill(person)
        page.get_by_label("Photos, one face each").set_input_files([str(f) for f in files])
        page.get_by_role("button", name="Upload").click()
        expect(page.get_by_role("status").filter(has_text="photos added")).to_have_text(
            f"{len(files)} of {len(files)} photos added to {person}."
        )
        expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute(
            "value", str(len(files))
        )
    for person in PEOPLE:
        count = len(list((console.faces / person).glob("*.jpg")))
        row = page.locator(f"tr[data-subject='{person}']")
        expect(row.get_by_test_id("subject-count")).to_have_text(str(count))
    # a photo the API refuses: its message is shown, the others are unaffected
    page.get_by_label("Subject (new or existing)").fill("crowd")
    group = console.faces / "groups" / "05_6faces.jpg"
    page.get_by_label("Photos, one face each").set_input_files(str(group))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert")).to_contain_text("05_6faces.jpg: ")
    expect(page.get_by_role("status").filter(has_text="photos added")).to_have_text(
        "0 of 1 photos added to crowd."
    )
    page.get_by_label("Search subjects").fill("OB")
    expect(page.locator("tr[data-subject]")).to_have_count(1)
    page.get_by_role("button", name="Photos of obama").click()
    thumbs = page.get_by_role("img", name="of obama")
    expect(thumbs).to_have_count(4)
    for thumb in thumbs.all():
        expect(thumb).to_have_js_property("complete", True)
        assert thumb.evaluate("img => img.naturalWidth") > 0
    console.shot("collection")


def drawn_faces(page: Page) -> list[dict[str, Any]]:
    """Every face drawn on the playground's photo: its SVG box, its label, and where both sit
    on the screen relative to the photo."""
    return list(
        page.evaluate(
            """() => {
              const img = document.querySelector('.face-photo img');
              const frame = img.getBoundingClientRect();
              const scale = img.naturalWidth / frame.width;
              return [...document.querySelectorAll('[data-testid=face-box]')].map((rect) => {
                const i = rect.dataset.index;
                const label = document.querySelector(`[data-testid=face-label][data-index="${i}"]`);
                const on = rect.getBoundingClientRect();
                return {
                  box: ['x', 'y', 'width', 'height'].map((a) => Number(rect.getAttribute(a))),
                  screen: [on.left - frame.left, on.top - frame.top, on.width, on.height]
                    .map((v) => v * scale),
                  label: label.textContent,
                };
              });
            }"""
        )
    )


@pytest.mark.parametrize("photo", GROUPS)
def test_recognised_faces_are_drawn_where_the_api_finds_them(console: Console, photo: str) -> None:
    page = console.page
    open_service(console, "people", "Playground")
    manifest = json.loads((console.faces / "manifest.json").read_text())
    people = next(g for g in manifest["group_photos"] if g["file"] == photo)["people_left_to_right"]
    page.get_by_label("Photo", exact=True).set_input_files(str(console.faces / photo))
    expect(page.get_by_role("status").filter(has_text="faces found")).to_have_text(
        f"{len(people)} faces found."
    )
    expect(page.get_by_test_id("face-label")).to_have_count(len(people))
    reply = call(
        "POST",
        f"{console.mesh.rest}/api/v1/recognition/recognize",
        headers={"x-api-key": console.keys["people"]},
        query=RECOGNIZE_QUERY,
        files={"file": (Path(photo).name, (console.faces / photo).read_bytes(), "image/jpeg")},
    )
    assert reply.status == 200, reply.body
    expected = reply.json()["result"]
    drawn = drawn_faces(page)
    assert len(drawn) == len(expected)
    for face, api in zip(drawn, expected, strict=True):
        b = api["box"]
        assert face["box"] == [
            b["x_min"],
            b["y_min"],
            b["x_max"] - b["x_min"],
            b["y_max"] - b["y_min"],
        ]
        assert face["screen"] == pytest.approx(face["box"], abs=3), "box not over the face"
    left_to_right = sorted(drawn, key=lambda f: f["box"][0] + f["box"][2] / 2)
    names = [
        f["label"].rsplit(" ", 1)[0] if f["label"] != "unknown" else None for f in left_to_right
    ]
    assert names == people
    json_panel = json.loads(page.get_by_test_id("json-answer").inner_text())
    assert [f["box"] for f in json_panel["result"]] == [f["box"] for f in expected]
    curl = page.get_by_test_id("curl").inner_text()
    assert "/api/v1/recognition/recognize?" in curl and console.keys["people"] in curl
    assert f"file=@{Path(photo).name}" in curl
    if photo == GROUPS[0]:
        items = page.get_by_test_id("face-item")
        expect(items.first).to_contain_text("Age")
        expect(items.first).to_contain_text("Pose")
        expect(items.first).to_contain_text("Landmarks")
        console.shot("playground")


def test_verify_two_photos_side_by_side(console: Console) -> None:
    page = console.page
    open_service(console, "pairs", "Playground")
    source = console.faces / "biden" / "01.jpg"
    target = console.faces / "groups" / "02_2faces.jpg"  # obama, biden
    page.get_by_label("Source photo (one face)").set_input_files(str(source))
    page.get_by_label("Target photo").set_input_files(str(target))
    expect(page.get_by_role("status").filter(has_text="Best similarity")).to_be_visible()
    labels = page.get_by_test_id("verify-target").get_by_test_id("face-label")
    expect(labels).to_have_count(2)
    expect(page.get_by_test_id("verify-source").get_by_test_id("face-box")).to_have_count(1)
    targets = page.evaluate(
        """() => {
          const side = document.querySelector('[data-testid=verify-target]');
          return [...side.querySelectorAll('[data-testid=face-box]')].map((rect) => ({
            x: Number(rect.getAttribute('x')),
            similarity: Number(side.querySelector(
              `[data-testid=face-label][data-index="${rect.dataset.index}"]`
            ).textContent.replace('similarity ', '')),
          }));
        }"""
    )
    obama, biden = sorted(targets, key=lambda t: t["x"])
    assert biden["similarity"] >= 0.5 > obama["similarity"]
    console.shot("verification")


def test_a_rotated_key_refuses_the_old_one(console: Console) -> None:
    page = console.page
    open_service(console, "people", "Statistics")
    expect(page.locator(".chart rect.bar")).to_have_count(30)
    key_box = page.get_by_test_id("api-key")
    old_key = key_box.input_value()
    assert old_key == console.keys["people"]
    page.get_by_role("button", name="Rotate key of people").click()
    page.get_by_role("button", name="Issue a new key").click()
    expect(page.get_by_role("status").filter(has_text="New API key")).to_be_visible()
    expect(key_box).not_to_have_value(old_key)
    new_key = key_box.input_value()
    url = f"{console.mesh.rest}/api/v1/recognition/subjects"
    refused = call("GET", url, headers={"x-api-key": old_key})
    assert refused.status in (400, 401, 403, 404), refused.body
    assert refused.json()["message"]
    accepted = call("GET", url, headers={"x-api-key": new_key})
    assert accepted.status == 200 and sorted(accepted.json()["subjects"]) == sorted(PEOPLE)
    console.keys["people"] = new_key


def test_the_api_reference_lists_every_operation(console: Console) -> None:
    page = console.page
    document = call("GET", f"{console.mesh.rest}/openapi.json")
    assert document.status == 200
    operations = sum(len(methods) for methods in document.json()["paths"].values())
    console.go("#/reference")
    expect(page.locator("details.operation")).to_have_count(operations)
    recognize = page.locator("details#RecognizeFaces")
    recognize.locator("summary").click()
    expect(recognize).to_contain_text("multipart/form-data")
    expect(recognize).to_contain_text("similarity_threshold")
    unknown = call("GET", f"{console.mesh.rest}/api/v1/no-such-path")
    assert unknown.status == 404 and "message" in unknown.json()


SCREENS = ("#/signin", "#/apps", "app", "Collection", "Playground", "#/reference")


@pytest.mark.parametrize("width", [375, 1280])
def test_main_screens_pass_axe_at_phone_and_laptop_widths(console: Console, width: int) -> None:
    page = console.page
    page.set_viewport_size({"width": width, "height": 800})
    problems = []
    try:
        for screen in SCREENS:
            if screen == "app":
                console.go("#/apps")
                page.get_by_role("link", name=console.app_name).click()
            elif screen.startswith("#"):
                console.go(screen)
            else:
                open_service(console, "people", screen)
                if screen == "Playground":
                    group = console.faces / GROUPS[0]
                    page.get_by_label("Photo", exact=True).set_input_files(str(group))
                    expect(page.get_by_test_id("face-label")).to_have_count(3)
                else:
                    page.get_by_role("button", name="Photos of obama").click()
                    expect(page.get_by_role("img", name="of obama")).to_have_count(4)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            page.add_script_tag(path=str(AXE))
            result = page.evaluate(
                "axe.run(document, {runOnly: {type: 'tag', values:"
                " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
            )
            for violation in result["violations"]:
                if violation["impact"] in ("serious", "critical"):
                    targets = [n["target"] for n in violation["nodes"]][:3]
                    problems.append(f"{screen}: {violation['id']} {violation['help']} {targets}")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            if overflow > width:
                problems.append(f"{screen}: the page is {overflow} px wide at {width} px")
            if width == 375 and screen == "Playground":
                console.shot("playground-phone")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    assert problems == [], "\n".join(problems)
