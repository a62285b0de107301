"""admin_svc configuration: defaults, secrets kept out of repr, production rules."""

from __future__ import annotations

import pytest

from admin_svc.config import load_config
from facegrid.config import ConfigError


def test_configuration_defaults_and_production_rules() -> None:
    config = load_config({"FACEGRID_DATABASE_URL": "postgresql://db/x"})
    assert (config.host, config.port, config.environment) == ("127.0.0.1", 50053, "development")
    assert (config.demo_setup, config.token_secret, config.access_token_ttl_s) == (True, None, 900)
    assert "postgresql://db/x" not in repr(config)
    with pytest.raises(ConfigError, match="FACEGRID_DATABASE_URL"):
        load_config({})
    production = {"FACEGRID_DATABASE_URL": "postgresql://db/x", "FACEGRID_ENV": "production"}
    with pytest.raises(ConfigError, match="FACEGRID_TOKEN_SECRET"):
        load_config(production)
    secret = "p" * 40
    config = load_config({**production, "FACEGRID_TOKEN_SECRET": secret})
    assert config.demo_setup is False and secret not in repr(config)
    with pytest.raises(ConfigError, match="at least 32"):
        load_config({**production, "FACEGRID_TOKEN_SECRET": "short"})
    with pytest.raises(ConfigError):
        load_config({**production, "FACEGRID_ENV": "staging"})
    with pytest.raises(ConfigError):
        load_config({"FACEGRID_DATABASE_URL": "x", "FACEGRID_MIGRATION_BATCH_SIZE": "33"})


def test_migration_progress_interval_default_override_and_refusal() -> None:
    base = {"FACEGRID_DATABASE_URL": "x"}
    assert load_config(base).migration_progress_s == 10.0
    key = "FACEGRID_ADMIN_MIGRATION_PROGRESS_S"
    assert load_config({**base, key: "0"}).migration_progress_s == 0.0
    assert load_config({**base, key: "2.5"}).migration_progress_s == 2.5
    with pytest.raises(ConfigError, match=key):
        load_config({**base, key: "-1"})
