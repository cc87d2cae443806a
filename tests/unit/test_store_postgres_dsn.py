from __future__ import annotations

import pytest

from server.store.postgres import POOL_MAX_SIZE, parse_dsn


def test_our_parameters_are_taken_out_and_the_rest_kept() -> None:
    dsn, schema, pool = parse_dsn(
        "postgresql://sb:pw@db:5432/switchboard?sslmode=require&schema=sb_prod&pool_max_size=4")
    assert dsn == "postgresql://sb:pw@db:5432/switchboard?sslmode=require"
    assert (schema, pool) == ("sb_prod", 4)


def test_defaults_without_parameters() -> None:
    assert parse_dsn("postgresql://db/switchboard") == (
        "postgresql://db/switchboard", None, POOL_MAX_SIZE)


@pytest.mark.parametrize("query", ["schema=a;drop", "schema=", "schema=1abc",
                                   "schema=" + "a" * 64, "pool_max_size=0",
                                   "pool_max_size=lots"])
def test_bad_parameters_are_refused(query: str) -> None:
    with pytest.raises(ValueError, match="database DSN"):
        parse_dsn(f"postgresql://db/switchboard?{query}")
