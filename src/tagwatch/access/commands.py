"""`tagwatch users`, `tagwatch tokens` and `tagwatch audit` commands."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tagwatch.access.principal import Principal

out = Console()
err = Console(stderr=True)


def _operator() -> Principal:
    """Whoever runs the command, as the audit log names them."""
    return Principal(
        user_id=None,
        username=f"cli:{getpass.getuser()}",
        display_name="Command line",
        roles=frozenset({"command_line"}),
        permissions=frozenset(),
    )


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="User accounts", no_args_is_help=True)
    tokens = typer.Typer(help="API tokens for machine clients", no_args_is_help=True)
    audit = typer.Typer(help="The audit log", no_args_is_help=True)
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")
    app.add_typer(audit, name="audit")

    @users.command("create")
    def users_create(
        username: Annotated[str, typer.Option(help="Unique sign-in name")],
        role: Annotated[list[str], typer.Option(help="Role (repeat for several)")],
        team: Annotated[str | None, typer.Option(help="Team name (created if new)")] = None,
        password: Annotated[
            str | None, typer.Option(help="Omit to be asked; empty for identity-provider only")
        ] = None,
        display_name: str | None = None,
        email: str | None = None,
        delivery_unit: str | None = None,
        region: str | None = None,
        force: str | None = None,
    ) -> None:
        """Create a local account."""
        from tagwatch.access.audit import record
        from tagwatch.access.service import create_user
        from tagwatch.cli import cli_session

        if password is None:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            with cli_session() as session:
                user = create_user(
                    session,
                    username=username,
                    roles=role,
                    display_name=display_name,
                    email=email,
                    password=password or None,
                    team_name=team,
                    delivery_unit_code=delivery_unit,
                    region_code=region,
                    force_code=force,
                )
                record(
                    session,
                    _operator(),
                    "user.create",
                    subject_type="user",
                    subject_id=user.id,
                    detail={"username": user.username, "roles": user.roles},
                )
        except ValueError as error:
            raise _fail(str(error)) from error
        out.print(f"Created {username} ({', '.join(sorted(role))})")

    @users.command("list")
    def users_list() -> None:
        """List accounts with their roles and scope."""
        from tagwatch.access.repository import list_users
        from tagwatch.cli import cli_session

        table = Table("username", "name", "roles", "team", "delivery unit", "force", "active")
        with cli_session() as session:
            for user in list_users(session):
                table.add_row(
                    user.username,
                    user.display_name,
                    ", ".join(user.roles),
                    user.team.name if user.team else "",
                    user.delivery_unit_code or "",
                    user.force_code or "",
                    "yes" if user.active else "no",
                )
        out.print(table)

    @users.command("seed-demo")
    def users_seed_demo() -> None:
        """Create the demo accounts (one per role and the London cohort) and print them."""
        from tagwatch.access.demo import seed_demo_users
        from tagwatch.cli import cli_session

        with cli_session() as session:
            accounts = seed_demo_users(session)
        table = Table("username", "password", "role")
        for row in accounts:
            table.add_row(*row)
        out.print(table)

    @tokens.command("create")
    def tokens_create(
        user: Annotated[str, typer.Option(help="Username the token acts for")],
        scope: Annotated[list[str], typer.Option(help="Permission (repeat for several)")],
        name: Annotated[str, typer.Option(help="What the token is for")] = "api client",
        days: Annotated[int | None, typer.Option(help="Expires after this many days")] = None,
    ) -> None:
        """Create a token; the secret is printed once and cannot be shown again."""
        from tagwatch.access.audit import record
        from tagwatch.access.repository import user_by_username
        from tagwatch.access.service import create_token
        from tagwatch.cli import cli_session
        from tagwatch.db.base import utcnow

        expires = utcnow() + dt.timedelta(days=days) if days else None
        try:
            with cli_session() as session:
                owner = user_by_username(session, user)
                if owner is None:
                    raise ValueError(f"user: no user {user!r}")
                issued = create_token(session, owner, name, scope, expires_at=expires)
                record(
                    session,
                    _operator(),
                    "token.create",
                    subject_type="api_token",
                    subject_id=issued.token.id,
                    detail={"username": user, "scopes": issued.token.scopes},
                )
        except ValueError as error:
            raise _fail(str(error)) from error
        err.print(f"Token {issued.token.id} for {user}; store the secret now, it is not kept:")
        out.print(issued.secret, highlight=False)

    @tokens.command("revoke")
    def tokens_revoke(token_id: Annotated[int, typer.Argument(help="Token id")]) -> None:
        """Revoke a token at once."""
        from tagwatch.access.audit import record
        from tagwatch.access.service import revoke_token
        from tagwatch.cli import cli_session

        try:
            with cli_session() as session:
                revoke_token(session, token_id)
                record(
                    session,
                    _operator(),
                    "token.revoke",
                    subject_type="api_token",
                    subject_id=token_id,
                )
        except ValueError as error:
            raise _fail(str(error)) from error
        out.print(f"Revoked token {token_id}")

    @audit.command("verify")
    def audit_verify() -> None:
        """Check the hash chain; names the first entry that does not fit."""
        from tagwatch.access.audit import verify
        from tagwatch.cli import cli_session

        with cli_session() as session:
            check = verify(session)
        if not check.ok:
            raise _fail(
                f"Audit chain broken at entry {check.first_broken_id}: {check.reason} "
                f"({check.checked} entries before it are intact)"
            )
        out.print(f"Audit chain intact: {check.checked} entries")

    @audit.command("search")
    def audit_search(
        user: str | None = None,
        action: str | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        since: Annotated[
            dt.datetime | None, typer.Option(help="UTC, e.g. 2026-03-01T00:00:00")
        ] = None,
        until: Annotated[dt.datetime | None, typer.Option(help="UTC, exclusive")] = None,
        limit: int = 100,
    ) -> None:
        """Search the audit log (the search is itself audited); prints JSON lines."""
        from tagwatch.access.audit_search import audited_search
        from tagwatch.access.repository import AuditQuery
        from tagwatch.cli import cli_session

        query = AuditQuery(
            username=user,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            since=_as_utc(since),
            until=_as_utc(until),
            limit=limit,
        )
        try:
            with cli_session() as session:
                total, entries = audited_search(session, _operator(), query)
                lines = [
                    json.dumps(
                        {
                            "id": e.id,
                            "at": e.at.isoformat(),
                            "username": e.username,
                            "role": e.role,
                            "action": e.action,
                            "subject_type": e.subject_type,
                            "subject_id": e.subject_id,
                            "purpose": e.purpose,
                            "detail": e.detail,
                        },
                        ensure_ascii=False,
                    )
                    for e in entries
                ]
        except ValueError as error:
            raise _fail(str(error)) from error
        for line in lines:
            out.print(line, highlight=False, soft_wrap=True)
        err.print(f"{len(lines)} of {total} matching entries")


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
