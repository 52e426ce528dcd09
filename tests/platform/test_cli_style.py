"""One style across the `hypervision` command line (the shared option types of
hypervision.commands.common): a required member is the positional MEMBER, a member filter
is `--member`, a period is `--from`/`--to`, and the commands that destroy something ask
first unless `--yes`. Walks the whole command tree, so a new command is held to it too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from hypervision.cli import app

# Commands that delete, purge, drop, overwrite, restore or revoke (or rewrite operator
# files after showing a plan): they take --yes and otherwise ask (confirm_or_exit).
DESTRUCTIVE = {
    "accounts mfa-reset",       # removes the second factor, revokes sessions and tokens
    "accounts set-password",    # replaces the password, revokes sessions and tokens
    "backup restore",           # replaces a member's data or whole databases
    "chirpstack apply",         # --prune deletes objects from ChirpStack
    "devices import",           # rewrites the tenant file and the keys file
    "forget-receiver",          # drops a receiver's MQTT session and what it queued
    "grants revoke",
    "models add",               # writes an operator model into the catalogue folder
    "reprocess",                # replaces measurements decoded from stored uplinks
    "retention run",            # deletes expired data
    "superset password",        # replaces the provisioning account's password
    "tenants move",             # --drop-old drops the former copy
    "tokens revoke",
}
OTHER_PERIOD_NAMES = {"--first", "--last", "--start", "--end", "--since", "--until"}


# Typer builds on its own copy of click: its classes are recognised by what they have.
def commands(group: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from commands(command, f"{path} {name}".strip())
    else:
        yield path, group


TREE = dict(commands(typer.main.get_command(app)))


def is_option(param: Any) -> bool:
    return bool(param.param_type_name == "option")


def test_the_tree_is_walked() -> None:
    assert {"retention run", "opendata water", "alerts list", "labels"} <= set(TREE)


def test_a_period_is_from_and_to() -> None:
    wrong = [f"{name}: {opt}" for name, command in TREE.items() for p in command.params
             if is_option(p) for opt in p.opts + p.secondary_opts
             if opt in OTHER_PERIOD_NAMES]
    assert wrong == []


def test_a_member_filter_is_member_and_a_required_member_is_the_argument() -> None:
    wrong = []
    for name, command in TREE.items():
        for p in command.params:
            if p.name not in ("member", "slug"):
                continue
            if is_option(p):
                if "--member" not in p.opts:
                    wrong.append(f"{name}: {p.opts} for a member")
                if p.required:
                    wrong.append(f"{name}: a required member as {p.opts}, not MEMBER")
            elif not p.required:
                wrong.append(f"{name}: an optional MEMBER argument, not --member")
    assert wrong == []


def test_the_destructive_commands_and_only_they_take_yes() -> None:
    assert set(TREE) >= DESTRUCTIVE, DESTRUCTIVE - set(TREE)
    taking = {name for name, command in TREE.items() for p in command.params
              if is_option(p) and "--yes" in p.opts}
    assert DESTRUCTIVE - taking == set(), "destructive without --yes"
    assert taking - DESTRUCTIVE == set(), "--yes on a command not listed as destructive"
