"""Configuration readers: defaults, parsing and clear errors."""

import pytest

from facegrid.config import ConfigError, get_bool, get_int, get_log_format, get_str


def test_defaults_apply_when_unset_or_empty() -> None:
    assert get_str({}, "A", "x") == "x"
    assert get_str({"A": ""}, "A", "x") == "x"
    assert get_int({}, "N", 7) == 7
    assert get_bool({}, "B", True) is True


def test_values_are_parsed() -> None:
    assert get_int({"N": "42"}, "N", 7) == 42
    assert get_bool({"B": "off"}, "B", True) is False
    assert get_bool({"B": "Yes"}, "B", False) is True
    assert get_log_format({"FACEGRID_LOG_FORMAT": "json"}) == "json"


def test_missing_required_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="FACEGRID_DATABASE_URL is required"):
        get_str({}, "FACEGRID_DATABASE_URL")


@pytest.mark.parametrize(
    ("reader", "env"),
    [
        (lambda e: get_int(e, "N", 1), {"N": "ten"}),
        (lambda e: get_int(e, "N", 1, minimum=1), {"N": "0"}),
        (lambda e: get_bool(e, "N", True), {"N": "maybe"}),
        (get_log_format, {"FACEGRID_LOG_FORMAT": "xml"}),
    ],
)
def test_malformed_values_fail_at_start(reader, env) -> None:
    with pytest.raises(ConfigError):
        reader(env)
