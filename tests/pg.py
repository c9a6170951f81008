"""Throwaway PostgreSQL for tests, usable by any test package.

`start_pg_server()` gives a `PgServer` tests can create and drop databases on:

- `WATCHFLOOR_TEST_PG_URL` set (any libpq URL with rights to create databases): that server, untouched apart
  from the databases the tests create (random names, dropped at the end).
- otherwise a private cluster: `initdb`/`pg_ctl` from PATH or `/usr/lib/postgresql/*/bin`, trust auth,
  listening on a Unix socket only (`listen_addresses=''`, `-k <tmpdir>`), fsync off, stopped and deleted by
  `PgServer.stop()`. As root (initdb refuses root) the cluster runs as the `postgres` OS user through
  `runuser` (or `su`), in a temporary directory it owns.

Each pytest-xdist worker is its own session, so each starts its own cluster (or uses its own databases).
`pg_server_or_skip()` turns "no PostgreSQL here" into a skip with the reason, or a failure when `CI=true`.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

PG_URL_ENV = "WATCHFLOOR_TEST_PG_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_OS_USER = "postgres"
START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(Exception):  # noqa: N818 - a condition, reported as a skip reason
    """No PostgreSQL can be used here; the message says why and how to get one."""


@dataclass(slots=True)
class PgServer:
    """A PostgreSQL server the tests own databases on. `url(name)` is a plain `postgresql://` URL."""

    base_url: URL
    cluster_dir: Path | None = None
    pg_ctl: Path | None = None
    run_as: list[str] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"wf_test_{secrets.token_hex(4)}")
    created: list[str] = field(default_factory=list)
    _counter: int = 0

    def url(self, database: str) -> str:
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(_maintenance_db(self.base_url)), autocommit=True)

    def create_database(self, *, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`); returns its name."""
        self._counter += 1
        name = f"{self.prefix}_{self._counter}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self._admin() as connection:
            connection.execute(statement)
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.created:
            self.created.remove(name)

    def stop(self) -> None:
        """Drop what the tests created; stop and delete a private cluster."""
        if self.cluster_dir is None:
            for name in list(self.created):
                self.drop_database(name)
            return
        assert self.pg_ctl is not None
        subprocess.run(
            [
                *self.run_as,
                str(self.pg_ctl),
                "-D",
                str(self.cluster_dir / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
            cwd=self.cluster_dir,
        )
        shutil.rmtree(self.cluster_dir, ignore_errors=True)


def _maintenance_db(url: URL) -> str:
    return "postgres" if url.database in {None, ""} else str(url.database)


def find_pg_binaries() -> tuple[Path, Path] | None:
    """(initdb, pg_ctl): from PATH first, else the newest `/usr/lib/postgresql/<version>/bin`."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb), Path(pg_ctl)

    def version(path: Path) -> int:
        digits = re.sub(r"\D", "", path.parent.name)
        return int(digits) if digits else 0

    for bin_dir in sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=version, reverse=True):
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir / "initdb", bin_dir / "pg_ctl"
    return None


def _run_as_postgres() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the cluster as a non-root user, and that user (None: ourselves)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        msg = (
            f"running as root, and initdb refuses root; there is no {PG_OS_USER!r} OS user to run the "
            f"cluster as. Create one, run as another user, or set {PG_URL_ENV}"
        )
        raise PostgresUnavailable(msg) from None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", PG_OS_USER, "--"], user
    su = shutil.which("su")
    if su:
        return [su, PG_OS_USER, "-s", "/bin/sh", "-c"], user
    msg = f"running as root and neither runuser nor su is available to switch to {PG_OS_USER!r}"
    raise PostgresUnavailable(msg)


def _command(prefix: list[str], argv: list[str]) -> list[str]:
    if prefix and prefix[-1] == "-c":  # su takes one shell string
        return [*prefix, shlex.join(argv)]
    return [*prefix, *argv]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_cluster(*, durable: bool = False) -> PgServer:
    """initdb + pg_ctl start a private cluster on a Unix socket in a new temporary directory. Tests run
    it without fsync (fast, throwaway); `durable=True` keeps PostgreSQL's defaults (for benchmarks)."""
    binaries = find_pg_binaries()
    if binaries is None:
        msg = (
            f"no PostgreSQL binaries (initdb, pg_ctl) on PATH or under {PG_BIN_GLOB}; install the PostgreSQL "
            f"server package or set {PG_URL_ENV}=postgresql://user@host/db"
        )
        raise PostgresUnavailable(msg)
    initdb, pg_ctl = binaries
    prefix, user = _run_as_postgres()
    # Short path under /tmp: a Unix socket path must stay under ~100 bytes.
    base = Path(tempfile.mkdtemp(prefix="wf-pg-"))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"
    port = _free_port()
    try:
        _run(
            _command(
                prefix,
                [str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"],
            ),
            cwd=base,
            what="initdb",
        )
        options = f"-c listen_addresses='' -k {shlex.quote(str(base))} -p {port} -c max_connections=200 "
        if not durable:
            options += "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB"
        _run(
            _command(
                prefix,
                [
                    str(pg_ctl),
                    "-D",
                    str(data),
                    "-l",
                    str(base / "server.log"),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_SECONDS),
                    "-o",
                    options,
                    "start",
                ],
            ),
            cwd=base,
            what="pg_ctl start",
            log=base / "server.log",
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    url = URL.create(
        "postgresql", username="postgres", database="postgres", query={"host": str(base), "port": str(port)}
    )
    return PgServer(base_url=url, cluster_dir=base, pg_ctl=pg_ctl, run_as=prefix)


def _run(argv: list[str], *, cwd: Path, what: str, log: Path | None = None) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        msg = f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}\n{tail}"
        raise RuntimeError(msg)


def start_pg_server() -> PgServer:
    """The server from `WATCHFLOOR_TEST_PG_URL`, else a private cluster (raises `PostgresUnavailable`)."""
    external = os.environ.get(PG_URL_ENV)
    if external:
        url = make_url(external)
        return PgServer(base_url=url.set(drivername="postgresql"))
    return start_cluster()


def pg_server_or_skip() -> PgServer:
    """`start_pg_server()`; when PostgreSQL is unavailable, skip with the reason (fail when `CI=true`)."""
    try:
        return start_pg_server()
    except PostgresUnavailable as unavailable:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: {unavailable}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {unavailable}")
