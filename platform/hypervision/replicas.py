"""The database servers' read replicas: whether each answers, and how far behind its server.

A server of HV_DATABASE_SERVERS_FILE may declare a streaming replica (hypervision.placement)
that the dashboards read (docs/scale.md, "Read replicas"). PostgreSQL keeps it, not the
platform; this module only looks at it, for `hypervision servers`:

1. on the server, as its superuser: the end of its WAL (pg_current_wal_lsn), its system
   identifier, and the replication connections it serves (pg_stat_replication: state,
   replay lag);
2. on the replica, as the API's login role (present on every server, with the same
   password on the copy): that it is still in recovery, a copy of this server (the same
   system identifier, which a base backup keeps), the WAL it has replayed
   (pg_last_wal_replay_lsn) and the commit time of the last transaction it replayed
   (pg_last_xact_replay_timestamp);
3. the lag: the WAL bytes the server had written in step 1 and the replica had not yet
   replayed in step 2; none means caught up, otherwise the lag in time is the age of the
   last replayed commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg

from hypervision import placement
from hypervision.placement import Replica, Server
from hypervision.settings import Settings

CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Sender:
    """A replication connection a server serves (a row of pg_stat_replication)."""

    client: str                 # its address, `local` over the Unix socket
    state: str                  # streaming, catchup, ...
    replay_lag: float | None    # seconds; PostgreSQL measures it only while WAL flows


@dataclass(frozen=True)
class ReplicaHealth:
    replica: Replica
    error: str | None = None          # why it could not be read; None: it answered
    in_recovery: bool = True          # False: promoted, it follows its server no more
    copy_of_server: bool = True       # False: a copy of another cluster than its server's
    behind_bytes: int | None = None   # WAL the server had and the replica had not replayed
    last_commit: dt.datetime | None = None  # commit time of the last replayed transaction
    last_commit_age: float | None = None    # seconds since then, by the replica's clock

    @property
    def lag(self) -> float | None:
        """Seconds behind the server: 0 when caught up, None when unknown."""
        if self.behind_bytes == 0:
            return 0.0
        return self.last_commit_age

    @property
    def problem(self) -> str | None:
        if self.error is not None:
            return f"unreachable: {self.error}"
        if not self.in_recovery:
            return ("not in recovery: it was promoted and no longer follows its server;"
                    " dashboards reading it see a copy that does not change")
        if not self.copy_of_server:
            return ("not a copy of its server (another system identifier): dashboards"
                    " reading it read another cluster")
        return None


@dataclass(frozen=True)
class ServerHealth:
    server: Server
    error: str | None = None
    senders: list[Sender] = field(default_factory=list)
    replica: ReplicaHealth | None = None

    @property
    def problems(self) -> list[str]:
        """What is wrong, in a few words each (the reasons are in `error` and `problem`)."""
        name = self.server.name
        found = [] if self.error is None else [f"server {name} unreachable"]
        if self.replica is not None:
            if self.replica.error is not None:
                found.append(f"{name}'s replica {self.replica.replica.describe()} unreachable")
            elif not self.replica.in_recovery:
                found.append(f"{name}'s replica {self.replica.replica.describe()} no longer"
                             " follows it")
            elif not self.replica.copy_of_server:
                found.append(f"{name}'s replica {self.replica.replica.describe()} is a copy"
                             " of another cluster")
        return found


def check(settings: Settings) -> list[ServerHealth]:
    """Every declared server, the primary first, with its replica's health."""
    return [check_server(settings, found)
            for found in placement.load_servers(settings).values()]


def check_server(settings: Settings, server: Server) -> ServerHealth:
    wal_end: int | None = None
    system: int | None = None
    senders: list[Sender] = []
    error = None
    try:
        with placement.connect_admin(settings, server.name,
                                     connect_timeout=CONNECT_TIMEOUT) as conn:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
                " (SELECT system_identifier FROM pg_control_system())").fetchone()
            wal_end, system = row if row else (None, None)
            senders = [Sender(client, state, lag) for client, state, lag in conn.execute(
                "SELECT coalesce(host(client_addr), 'local'), state,"
                " extract(epoch FROM replay_lag)::float8"
                " FROM pg_stat_replication ORDER BY 1, pid").fetchall()]
    except psycopg.Error as exc:
        error = _reason(exc)
    replica = (None if server.replica is None
               else _check_replica(settings, server, wal_end, system))
    return ServerHealth(server, error, senders, replica)


def _check_replica(settings: Settings, server: Server, wal_end: int | None,
                   system: int | None) -> ReplicaHealth:
    assert server.replica is not None
    try:
        conninfo = placement.replica_conninfo(settings, server.name, settings.api_role)
        with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT,
                             autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(),"
                " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,"
                " pg_last_xact_replay_timestamp(),"
                " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,"
                " (SELECT system_identifier FROM pg_control_system())"
            ).fetchone()
    except (psycopg.Error, RuntimeError) as exc:  # RuntimeError: no password file
        return ReplicaHealth(server.replica, error=_reason(exc))
    assert row is not None
    in_recovery, replayed, last_commit, age, copied = row
    copy_of_server = system is None or copied == system  # None: the server did not answer
    behind = None
    if in_recovery and copy_of_server and wal_end is not None and replayed is not None:
        # The server's end was read first: WAL written since is not counted against it.
        behind = max(0, wal_end - replayed)
    return ReplicaHealth(server.replica, None, bool(in_recovery), copy_of_server, behind,
                         last_commit, age)


def _reason(exc: Exception) -> str:
    """libpq's message on one line."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
