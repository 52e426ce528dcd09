"""`hypervision servers`: the database servers and their read replicas, with each
replica's lag (hypervision.replicas; docs/scale.md, "Read replicas")."""

from __future__ import annotations

import typer

from hypervision import placement, replicas
from hypervision.commands.common import console, exit_on_errors, fail, settings_or_exit


def _senders(health: replicas.ServerHealth) -> str:
    if not health.senders:
        return "no replication connection"
    each = ", ".join(
        f"{s.client} {s.state}"
        + ("" if s.replay_lag is None else f" replay lag {s.replay_lag:.3f} s")
        for s in health.senders)
    return f"{len(health.senders)} replication connection(s): {each}"


def _replica_line(health: replicas.ReplicaHealth, max_lag: float | None) -> tuple[str, bool]:
    """The replica's line, and whether it lags more than allowed."""
    where = f"replica {health.replica.describe()}"
    if health.problem is not None:
        return f"  ! {where}: {health.problem}", False
    replayed = ("" if health.last_commit is None
                else f"; last replayed commit {health.last_commit:%Y-%m-%d %H:%M:%S%z}")
    if health.behind_bytes == 0:
        return f"  = {where}: caught up (0 bytes behind{replayed})", False
    behind = ("? bytes" if health.behind_bytes is None
              else f"{health.behind_bytes:,} bytes")
    lag = "lag unknown" if health.lag is None else f"lag {health.lag:.1f} s"
    late = max_lag is not None and (health.lag is None or health.lag > max_lag)
    return f"  {'!' if late else '~'} {where}: {behind} of WAL behind, {lag}{replayed}", late


def register(app: typer.Typer) -> None:
    @app.command("servers")
    def servers_command(
        max_lag: float | None = typer.Option(
            None, "--max-lag", metavar="SECONDS", show_default=False,
            help="Also exit 1 when a replica is more than this many seconds behind."),
    ) -> None:
        """The database servers (HV_DATABASE_SERVERS_FILE) and their read replicas: whether
        each answers and how far behind its server each replica is. Exit 1 when a server
        or a declared replica does not answer, or a replica no longer follows its server."""
        settings = settings_or_exit()
        with exit_on_errors(placement.PlacementError):
            found = replicas.check(settings)
        problems: list[str] = []
        for health in found:
            server = health.server
            if health.error is not None:
                console.print(f"! {server.describe()}: unreachable: {health.error}")
            else:
                console.print(f"= {server.describe()}: {_senders(health)}")
            problems += health.problems
            if health.replica is None:
                console.print("  = no replica declared")
                continue
            line, late = _replica_line(health.replica, max_lag)
            console.print(line)
            if late:
                problems.append(f"{server.name}'s replica is more than {max_lag:g} s behind")
        if problems:
            raise fail("; ".join(problems))
