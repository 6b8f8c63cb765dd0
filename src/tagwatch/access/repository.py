"""All SQL for users, teams, tokens and searching the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagwatch.access.models import ApiToken, AuditEntry, Team, User


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.username)).all()


def team_by_name(session: Session, name: str) -> Team | None:
    return session.scalar(select(Team).where(Team.name == name))


def get_or_create_team(session: Session, name: str, delivery_unit_code: str | None) -> Team:
    team = team_by_name(session, name)
    if team is None:
        team = Team(name=name, delivery_unit_code=delivery_unit_code)
        session.add(team)
        session.flush()
    return team


def team_usernames(session: Session, team_id: int) -> list[str]:
    """Usernames of a team's members (a manager's view of whose caseloads are in scope)."""
    return list(
        session.scalars(
            select(User.username).where(User.team_id == team_id).order_by(User.username)
        )
    )


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


def tokens_for_user(session: Session, user_id: int) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).all()


@dataclass(frozen=True)
class AuditQuery:
    username: str | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    offset: int = 0

    def terms(self) -> dict[str, str]:
        """The non-empty search terms, as the audit entry for the search records them."""
        values = {
            "username": self.username,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in values.items() if v}


def search_audit(session: Session, query: AuditQuery) -> tuple[int, Sequence[AuditEntry]]:
    """Matching entries, newest first, and how many match in all."""
    stmt = select(AuditEntry)
    if query.username:
        stmt = stmt.where(AuditEntry.username == query.username)
    if query.action:
        stmt = stmt.where(AuditEntry.action == query.action)
    if query.subject_type:
        stmt = stmt.where(AuditEntry.subject_type == query.subject_type)
    if query.subject_id:
        stmt = stmt.where(AuditEntry.subject_id == query.subject_id)
    if query.since:
        stmt = stmt.where(AuditEntry.at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEntry.at < query.until)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(AuditEntry.id.desc()).limit(query.limit).offset(query.offset)
    ).all()
    return total, rows
