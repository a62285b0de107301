"""Every administration call against the real mesh: accounts, applications, members,
services and keys, statistics, an embedding migration."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable

import grpc
import pytest
from facegrid_client import Facegrid, FacegridError, pb

from .conftest import Mesh, until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def refusal(call: Callable[[], object]) -> FacegridError | None:
    """The error ``call`` raised, or None."""
    try:
        call()
    except FacegridError as error:
        return error
    return None


def test_accounts(mesh: Mesh, admin_token: str):
    email = f"ann-{uuid.uuid4().hex[:10]}@example.com"
    with Facegrid(mesh.target) as fg:
        user = fg.admin.sign_up(email, PASSWORD, "Ann", "Lee")
        assert (user.email, user.global_role) == (email, pb.admin.GLOBAL_ROLE_USER)
        session = fg.admin.sign_in(email.upper(), PASSWORD)
        assert session.user.user_id == user.user_id and session.expires_in_s > 0
        refreshed = fg.admin.refresh_token(session.refresh_token)
        assert refreshed.access_token and refreshed.refresh_token != session.refresh_token

        ann = fg.with_options(token=refreshed.access_token).admin
        assert ann.current_user().user_id == user.user_id
        # Only a global OWNER or ADMINISTRATOR lists users (no enumeration of accounts).
        with pytest.raises(FacegridError) as not_allowed:
            ann.list_users()
        assert not_allowed.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert ann.update_user(first_name="Anna").first_name == "Anna"
        ann.change_password(PASSWORD, PASSWORD + "!")
        new_session = fg.admin.sign_in(email, PASSWORD + "!")

        admin = fg.with_options(token=admin_token).admin
        promoted = admin.update_user_role(user.user_id, "ADMINISTRATOR")
        assert promoted.global_role == pb.admin.GLOBAL_ROLE_ADMINISTRATOR
        assert email in {u.email for u in admin.list_users()}
        renamed = admin.update_user(user.user_id, last_name="Li")
        assert (renamed.first_name, renamed.last_name) == ("Anna", "Li")

        mine = fg.with_options(token=new_session.access_token).admin
        mine.sign_out()
        with pytest.raises(FacegridError) as signed_out:
            mine.current_user()
        assert signed_out.value.code == grpc.StatusCode.UNAUTHENTICATED

        again = fg.admin.sign_in(email, PASSWORD + "!")
        fg.admin.sign_out(again.refresh_token)
        with pytest.raises(FacegridError):
            fg.admin.refresh_token(again.refresh_token)
        admin.delete_user(user.user_id)
        assert email not in {u.email for u in admin.list_users()}


def test_applications_members_services_and_keys(mesh: Mesh, admin_token: str, people):
    email = f"bo-{uuid.uuid4().hex[:10]}@example.com"
    with Facegrid(mesh.target, token=admin_token) as fg:
        bo = fg.admin.sign_up(email, PASSWORD, "Bo")
        admin = fg.admin
        app = admin.create_application(f"apps {uuid.uuid4().hex[:10]}")
        assert app.caller_role == pb.admin.APPLICATION_ROLE_OWNER
        assert app.application_id in {a.application_id for a in admin.list_applications()}
        assert admin.get_application(app.application_id).name == app.name
        assert admin.rename_application(app.application_id, app.name + " 2").name == app.name + " 2"

        member = admin.add_member(app.application_id, email)
        assert member.role == pb.admin.APPLICATION_ROLE_USER
        raised = admin.update_member_role(app.application_id, bo.user_id, "ADMINISTRATOR")
        assert raised.role == pb.admin.APPLICATION_ROLE_ADMINISTRATOR
        members = admin.list_members(app.application_id)
        assert [m.user.email for m in members][1:] == [email]
        admin.remove_member(app.application_id, bo.user_id)
        assert len(admin.list_members(app.application_id)) == 1

        service = admin.create_service(
            app.application_id, "staff", pb.common.SERVICE_TYPE_RECOGNITION
        )
        assert service.type == pb.common.SERVICE_TYPE_RECOGNITION and service.api_key
        assert [s.service_id for s in admin.list_services(app.application_id)] == [
            service.service_id
        ]
        renamed = admin.rename_service(app.application_id, service.service_id, "people")
        assert renamed.name == "people"

        person = next(iter(people))
        staff = fg.with_options(api_key=service.api_key)
        staff.add_face(person, people[person][0])
        rotated = admin.rotate_api_key(app.application_id, service.service_id)
        assert rotated.api_key != service.api_key
        old_key = until(  # api_svc nodes drop a rotated key when notified
            lambda: refusal(staff.list_subjects), lambda error: error is not None
        )
        assert old_key is not None and old_key.reason == "UNKNOWN_API_KEY"
        assert fg.with_options(api_key=rotated.api_key).list_subjects() == [person]

        clone = admin.clone_service(app.application_id, service.service_id, "copy")
        assert (clone.subject_count, clone.image_count) == (1, 1)
        today = datetime.datetime.now(datetime.UTC).date()
        stats = until(  # api_svc writes its request counts every second
            lambda: admin.service_statistics(app.application_id, service.service_id, end=today),
            lambda s: s.total_request_count >= 2,
        )
        assert len(stats.days) == 30 and stats.days[-1].date == today.isoformat()
        assert stats.days[-1].request_count == stats.total_request_count

        migration = admin.start_embedding_migration(app.application_id, clone.service_id)
        assert migration.status == pb.admin.MIGRATION_STATUS_RUNNING
        done = until(
            lambda: admin.get_embedding_migration(
                app.application_id, clone.service_id, migration.migration_id
            ),
            lambda m: m.status != pb.admin.MIGRATION_STATUS_RUNNING,
            timeout_s=60,
        )
        assert done.status == pb.admin.MIGRATION_STATUS_SUCCEEDED
        assert done.total_count == done.migrated_count + done.skipped_count + done.failed_count
        assert done.target_calculator == "dlib-resnet-v1" and done.HasField("end_time")
        latest = admin.get_service(app.application_id, clone.service_id).latest_migration
        assert latest.migration_id == migration.migration_id

        admin.delete_service(app.application_id, clone.service_id)
        assert len(admin.list_services(app.application_id)) == 1
        admin.delete_application(app.application_id)
        with pytest.raises(FacegridError) as gone:
            admin.get_application(app.application_id)
        assert gone.value.code == grpc.StatusCode.NOT_FOUND
        admin.delete_user(bo.user_id)
