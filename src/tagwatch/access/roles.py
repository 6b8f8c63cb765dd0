"""Roles and the permissions each holds, on least privilege.

A user's permissions are the union of their roles'. `restricted_cases` is a flag role: it adds
only `restricted:read` and is given on top of a working role to the few who need it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tagwatch.access.permissions import PERMISSIONS

_CASEWORK_READ = frozenset(
    {
        "person:read",
        "person:search",
        "order:read",
        "device:read",
        "refdata:read",
        "location:read",
        "compliance:read",
        "alert:read",
    }
)

ROLES: dict[str, frozenset[str]] = {
    "probation_practitioner": _CASEWORK_READ
    | {"compliance:write", "alert:acknowledge", "alert:outcome", "location:export"},
    "probation_manager": _CASEWORK_READ
    | {
        "compliance:write",
        "alert:acknowledge",
        "alert:outcome",
        "alert:review_tamper",
        "alert:report",
        "location:export",
        "order:write",
        "order:import",
        "order:export",
        "person:write",
        "request:read",
        "request:approve",
        "report:read",
        "dq:read",
    },
    # Police never browse trails: they ask, with a lawful basis, and see approved results.
    "police_officer": frozenset({"crime:read", "request:create", "request:read"}),
    "crime_hub_caseworker": frozenset(
        {
            "crime:upload",
            "crime:read",
            "crime:match",
            "crime:review",
            "person:read",
            "order:read",
            "location:read",
            "refdata:read",
            "request:read",
        }
    ),
    "crime_hub_manager": frozenset(
        {
            "crime:upload",
            "crime:read",
            "crime:match",
            "crime:review",
            "crime:authorise",
            "crime:evidence",
            "person:read",
            "order:read",
            "location:read",
            "location:export",
            "refdata:read",
            "request:read",
            "request:approve",
            "report:read",
        }
    ),
    "home_office_caseworker": frozenset(
        {
            "immigration:read",
            "immigration:write",
            "person:read",
            "person:search",
            "order:read",
            "location:read",
            "compliance:read",
            "alert:read",
            "alert:acknowledge",
            "refdata:read",
        }
    ),
    # The supplier's staff fit and maintain equipment; they do not browse people's movements.
    "monitoring_centre_operator": frozenset(
        {
            "device:read",
            "device:write",
            "telemetry:quarantine",
            "order:read",
            "refdata:read",
            "alert:read",
        }
    ),
    "analyst": frozenset({"report:read", "dq:read", "dictionary:read", "pseudonymised:read"}),
    "administrator": frozenset(
        {
            "user:admin",
            "refdata:read",
            "refdata:write",
            "audit:read",
            "retention:admin",
            "dictionary:read",
            "report:publish",
            "report:read",
            "dq:read",
        }
    ),
    # Device gateways authenticate with API tokens; this role is for those tokens' users.
    "device_gateway": frozenset({"telemetry:ingest"}),
    "restricted_cases": frozenset({"restricted:read"}),
}

ROLE_DESCRIPTIONS: dict[str, str] = {
    "probation_practitioner": "Responsible officer: their caseload, compliance, trails, alerts",
    "probation_manager": "Team caseloads, tamper review, un-actioned alerts, approvals",
    "police_officer": "Crime matches and location data requests for one force",
    "crime_hub_caseworker": "Receives crime batches, runs and reviews matches",
    "crime_hub_manager": "Authorises matches and evidence packs",
    "home_office_caseworker": "Immigration bail cases and 3-monthly reviews",
    "monitoring_centre_operator": "Fitting, equipment and device health",
    "analyst": "Statistics, data quality and pseudonymised data",
    "administrator": "Users, reference data, retention and the audit log",
    "device_gateway": "Machine client that sends device records",
    "restricted_cases": "Added to a role: may see restricted (high-profile) cases",
}


def unknown_roles(roles: Iterable[str]) -> list[str]:
    return sorted(set(roles) - set(ROLES))


def permissions_for(roles: Iterable[str]) -> frozenset[str]:
    """The union of the roles' permissions; unknown roles grant nothing."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLES.get(role, frozenset())
    return frozenset(granted)


def roles_holding(permission: str) -> frozenset[str]:
    return frozenset(role for role, granted in ROLES.items() if permission in granted)


def permission_matrix_markdown() -> str:
    """The role x permission table in docs/access.md (a test keeps the two identical)."""
    roles = list(ROLES)
    lines = [
        "| permission | " + " | ".join(f"`{r}`" for r in roles) + " |",
        "| --- | " + " | ".join(":-:" for _ in roles) + " |",
    ]
    for permission in PERMISSIONS:
        marks = ["✓" if permission in ROLES[r] else "" for r in roles]
        lines.append(f"| `{permission}` | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"


def _check() -> None:
    for role, granted in ROLES.items():
        unknown = granted - set(PERMISSIONS)
        if unknown:
            raise ValueError(f"role {role} names unknown permissions {sorted(unknown)}")


_check()
