"""Importer fixtures: the embedded PostgreSQL of the admin_svc tests, for an in-process
api_svc the importer talks to over gRPC."""

from tests.admin_svc.conftest import db_url, pg_server, pool, template_db

__all__ = ["db_url", "pg_server", "pool", "template_db"]
