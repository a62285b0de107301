"""api_svc fixtures: the embedded PostgreSQL of the admin_svc tests (a fresh migrated database
per test) for the database-backed stores."""

from tests.admin_svc.conftest import db_url, pg_server, pool, template_db

__all__ = ["db_url", "pg_server", "pool", "template_db"]
