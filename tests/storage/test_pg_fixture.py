"""The PostgreSQL test fixture itself (`tests/pg.py`): skip locally, fail in CI, find binaries."""

from __future__ import annotations

import pytest

from tests import pg


def _unavailable() -> pg.PgServer:
    raise pg.PostgresUnavailable("no PostgreSQL binaries (test)")


def test_missing_postgres_is_a_skip_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "start_pg_server", _unavailable)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL binaries"):
        pg.pg_server_or_skip()


def test_missing_postgres_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "start_pg_server", _unavailable)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        pg.pg_server_or_skip()


def test_an_external_server_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg.PG_URL_ENV, "postgresql+psycopg://ci:secret@db.example:5433/postgres")
    server = pg.start_pg_server()
    assert server.cluster_dir is None
    assert server.url("wf_x") == "postgresql://ci:secret@db.example:5433/wf_x"
    assert server.prefix.startswith("wf_test_")


def test_binaries_are_found_as_a_pair_or_not_at_all() -> None:
    found = pg.find_pg_binaries()
    if found is not None:
        initdb, pg_ctl = found
        assert (initdb.name, pg_ctl.name) == ("initdb", "pg_ctl")
