"""Who may do what: pure functions of roles, following CompreFace's role system.

Global roles: OWNER (one; every right; cannot be deleted, transfers ownership by giving OWNER to
someone else), ADMINISTRATOR (the owner's rights except over the owner's account and giving
OWNER), USER (no user management, no new applications, only the applications it belongs to).
Global OWNER and ADMINISTRATOR act as OWNER in every application.

Application roles: OWNER (everything, the only one who may delete the application or be given
away by transfer), ADMINISTRATOR (services, keys, members other than the owner, renaming),
USER (read-only).
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Role(StrEnum):
    """A global or application role, as stored in the database."""

    OWNER = "OWNER"
    ADMINISTRATOR = "ADMINISTRATOR"
    USER = "USER"


class AppAction(Enum):
    """Things done within an application."""

    VIEW = "view the application"
    """See the application, its services with their API keys, statistics and members."""
    RENAME = "rename the application"
    """Rename the application."""
    DELETE = "delete the application"
    """Delete the application and everything in it."""
    MANAGE_SERVICES = "manage services"
    """Create, rename, delete, clone services; rotate keys; migrate embeddings."""
    MANAGE_MEMBERS = "manage members"
    """Invite members, change roles other than the owner's, remove members."""


_APP_RIGHTS: dict[Role, frozenset[AppAction]] = {
    Role.OWNER: frozenset(AppAction),
    Role.ADMINISTRATOR: frozenset(AppAction) - {AppAction.DELETE},
    Role.USER: frozenset({AppAction.VIEW}),
}


def is_global_admin(global_role: Role) -> bool:
    """True for global OWNER and ADMINISTRATOR."""
    return global_role in (Role.OWNER, Role.ADMINISTRATOR)


def effective_app_role(global_role: Role, member_role: Role | None) -> Role | None:
    """The role a user acts with in an application: OWNER for global OWNER/ADMINISTRATOR, else
    its membership role (None: not a member)."""
    if is_global_admin(global_role):
        return Role.OWNER
    return member_role


def app_allows(role: Role, action: AppAction) -> bool:
    """True when an effective application role may do ``action``."""
    return action in _APP_RIGHTS[role]


def can_create_application(global_role: Role) -> bool:
    """Only global OWNER and ADMINISTRATOR create applications."""
    return is_global_admin(global_role)


def can_manage_user(actor: Role, target: Role, is_self: bool) -> bool:
    """Rename or delete a user account: oneself always (deleting oneself is checked by
    :func:`can_delete_user`); others only as global OWNER, or ADMINISTRATOR on a non-owner."""
    if is_self:
        return True
    if actor is Role.OWNER:
        return True
    return actor is Role.ADMINISTRATOR and target is not Role.OWNER


def can_delete_user(actor: Role, target: Role, is_self: bool) -> bool:
    """Delete an account: never the OWNER's (transfer ownership first); oneself otherwise;
    others as in :func:`can_manage_user`."""
    if target is Role.OWNER:
        return False
    return can_manage_user(actor, target, is_self)


def can_set_global_role(actor: Role, target: Role, new_role: Role, is_self: bool) -> bool:
    """Change another user's global role. Nobody changes their own role; OWNER is given only
    by the OWNER (a transfer); the OWNER's role changes only by such a transfer; ADMINISTRATOR
    and USER are given by OWNER or ADMINISTRATOR."""
    if is_self or target is Role.OWNER:
        return False
    if new_role is Role.OWNER:
        return actor is Role.OWNER
    return is_global_admin(actor)


def can_add_member(actor_app_role: Role, new_role: Role) -> bool:
    """Invite a user with ``new_role`` (never OWNER: ownership is transferred, not given)."""
    return new_role is not Role.OWNER and app_allows(actor_app_role, AppAction.MANAGE_MEMBERS)


def can_change_member_role(
    actor_app_role: Role, target_role: Role, new_role: Role, is_self: bool
) -> bool:
    """Change a member's application role. Giving OWNER (a transfer) is for the OWNER only;
    the owner's own role changes only by a transfer; members with MANAGE_MEMBERS change the
    others, but not their own."""
    if new_role is Role.OWNER:
        return actor_app_role is Role.OWNER and target_role is not Role.OWNER
    if target_role is Role.OWNER or is_self:
        return False
    return app_allows(actor_app_role, AppAction.MANAGE_MEMBERS)


def can_remove_member(actor_app_role: Role, target_role: Role, is_self: bool) -> bool:
    """Remove a member: never the OWNER; oneself (leaving) always; others with
    MANAGE_MEMBERS."""
    if target_role is Role.OWNER:
        return False
    if is_self:
        return True
    return app_allows(actor_app_role, AppAction.MANAGE_MEMBERS)
