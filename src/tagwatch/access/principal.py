"""Who is asking: the signed-in user or API client behind a request."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """The caller of a request, with what they may do and the scope they may see.

    Scoping fields narrow what repositories return: a practitioner's caseload, a manager's
    delivery unit, a police officer's force. `None` means "not scoped by this".
    """

    user_id: int | None
    username: str
    display_name: str
    roles: frozenset[str]
    permissions: frozenset[str]
    team_id: int | None = None
    delivery_unit_code: str | None = None
    region_code: str | None = None
    force_code: str | None = None
    token_scopes: frozenset[str] | None = field(default=None)

    def has(self, permission: str) -> bool:
        return permission in self.permissions and (
            self.token_scopes is None or permission in self.token_scopes
        )

    @property
    def role_label(self) -> str:
        return ",".join(sorted(self.roles))
