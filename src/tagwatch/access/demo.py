"""Demo accounts: one per role, plus a London probation cohort the simulator signs in as."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tagwatch.access import repository, service

DEMO_REGION_CODE = "LDN"
DEMO_FORCE_CODE = "MPS"
# London probation delivery units the demo cohort is spread across (code, name).
DEMO_DELIVERY_UNITS: tuple[tuple[str, str], ...] = (
    ("LDN-CAMISL", "Camden and Islington"),
    ("LDN-HACKCITY", "Hackney and City"),
    ("LDN-SWARK", "Southwark"),
)
DEMO_PRACTITIONERS = 12


def demo_password(username: str) -> str:
    """Predictable on purpose: demo data only, printed for whoever runs the demo."""
    return f"{username}-demo-only"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    roles: tuple[str, ...]
    team_name: str | None = None
    delivery_unit_code: str | None = None
    force_code: str | None = None


def _role_accounts() -> list[DemoAccount]:
    first_unit = DEMO_DELIVERY_UNITS[0][0]
    return [
        DemoAccount("police1", ("police_officer",), force_code=DEMO_FORCE_CODE),
        DemoAccount("crimehub1", ("crime_hub_caseworker",)),
        DemoAccount("crimehubmanager1", ("crime_hub_manager",)),
        DemoAccount("homeoffice1", ("home_office_caseworker",)),
        DemoAccount("monitoring1", ("monitoring_centre_operator",)),
        DemoAccount("analyst1", ("analyst",)),
        DemoAccount("admin", ("administrator",)),
        DemoAccount("gateway1", ("device_gateway",)),
        DemoAccount(
            "restricted1",
            ("probation_manager", "restricted_cases"),
            delivery_unit_code=first_unit,
        ),
    ]


def _cohort_accounts() -> list[DemoAccount]:
    """officer1..officer12 in teams, four to a London delivery unit, and a manager per unit."""
    per_unit = DEMO_PRACTITIONERS // len(DEMO_DELIVERY_UNITS)
    accounts = [
        DemoAccount(
            f"officer{index + 1}",
            ("probation_practitioner",),
            team_name=f"{DEMO_DELIVERY_UNITS[index // per_unit][1]} team",
            delivery_unit_code=DEMO_DELIVERY_UNITS[index // per_unit][0],
        )
        for index in range(DEMO_PRACTITIONERS)
    ]
    accounts += [
        DemoAccount(
            f"manager{number}",
            ("probation_manager",),
            team_name=f"{name} team",
            delivery_unit_code=code,
        )
        for number, (code, name) in enumerate(DEMO_DELIVERY_UNITS, start=1)
    ]
    return accounts


def seed_demo_users(session: Session) -> list[tuple[str, str, str]]:
    """Create the demo accounts that do not exist yet; (username, password, role) for all."""
    seeded: list[tuple[str, str, str]] = []
    for account in _cohort_accounts() + _role_accounts():
        password = demo_password(account.username)
        if repository.user_by_username(session, account.username) is None:
            service.create_user(
                session,
                username=account.username,
                roles=list(account.roles),
                display_name=account.username.capitalize(),
                password=password,
                team_name=account.team_name,
                delivery_unit_code=account.delivery_unit_code,
                region_code=DEMO_REGION_CODE,
                force_code=account.force_code,
            )
        seeded.append((account.username, password, ",".join(account.roles)))
    return seeded
