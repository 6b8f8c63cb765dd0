"""The versioned rule set: which rules exist, their versions and their parameters.

A violation records the rule id and version that produced it and the rule set version whose
parameters were in force, so it can be re-derived from the raw records. Changing a rule's
logic bumps that rule's version; changing a parameter bumps `RULE_SET_VERSION`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

RULE_SET_VERSION = "2026.11.1"

Severity = Literal["low", "medium", "high"]


# Kinds of record a rule reads: a GPS fix, or a device event of that type.
RecordKind = Literal["fix", "rf", "status", "alcohol", "checkin"]
ALL_RECORDS: frozenset[RecordKind] = frozenset(("fix", "rf", "status", "alcohol", "checkin"))


@dataclass(frozen=True)
class Rule:
    rule_id: str
    version: str
    severity: Severity
    needs_review: bool
    title: str
    # A rule's findings change only when records of these kinds arrive (or the conditions
    # change): new records of other kinds leave them as they are. Rules whose findings also
    # change as time passes (a curfew period ends, a presence deadline passes) read every
    # kind: any evaluation brings them up to its moment, as one from scratch would.
    reads: frozenset[RecordKind] = ALL_RECORDS


_STATUS: frozenset[RecordKind] = frozenset(("status",))
_ALCOHOL: frozenset[RecordKind] = frozenset(("alcohol",))
_CHECKIN: frozenset[RecordKind] = frozenset(("checkin",))

RULES: dict[str, Rule] = {
    rule.rule_id: rule
    for rule in (
        Rule("curfew.absence.gps", "1", "high", False, "Absent during curfew (GPS)"),
        Rule("curfew.absence.rf", "1", "high", False, "Absent during curfew (RF)"),
        Rule("curfew.no_presence", "1", "high", False, "No evidence of presence at curfew"),
        Rule("zone.exclusion.entry", "1", "high", False, "Entered an exclusion zone"),
        Rule("zone.inclusion.exit", "1", "high", False, "Left an inclusion zone"),
        Rule("tamper.strap", "1", "high", True, "Strap tamper", _STATUS),
        Rule("tamper.body", "1", "medium", True, "Body contact lost", _STATUS),
        Rule("tamper.case", "1", "high", True, "Case tamper", _STATUS),
        Rule("battery.low", "1", "low", False, "Battery low", _STATUS),
        Rule("battery.flat", "1", "medium", False, "Battery flat", _STATUS),
        Rule("device.loss_of_communication", "1", "medium", False, "Loss of communication"),
        Rule("device.loss_of_location", "1", "medium", False, "Loss of location"),
        Rule("home_unit.power_loss", "1", "medium", False, "Home unit power loss", _STATUS),
        Rule("home_unit.moved", "1", "medium", False, "Home unit moved", _STATUS),
        Rule("alcohol.detected", "1", "high", False, "Alcohol detected", _ALCOHOL),
        Rule("alcohol.obstruction", "1", "medium", True, "Alcohol reading obstructed", _ALCOHOL),
        Rule("alcohol.tamper", "1", "high", True, "Alcohol tag tamper", _ALCOHOL),
        Rule("checkin.missed", "1", "medium", False, "Missed check-in", _CHECKIN),
        Rule("checkin.failed", "1", "medium", False, "Failed check-in", _CHECKIN),
    )
}


@dataclass(frozen=True)
class RuleParams:
    """The parameters of one rule set version. Times in seconds, distances in metres."""

    version: str = RULE_SET_VERSION
    # A breach is confirmed by this many consecutive fixes wholly in breach, or such a run
    # lasting this long; anything weaker is only a possible breach.
    confirm_fixes: int = 3
    confirm_seconds: float = 120.0
    # Hysteresis: an episode ends only on a fix whose accuracy circle is clear of the
    # boundary by at least this margin.
    exit_margin_m: float = 10.0
    curfew_radius_m: float = 50.0
    # Absences from curfew shorter than this are not violations (late return grace).
    curfew_grace_seconds: float = 300.0
    # After a curfew starts, evidence of presence is looked for in [start - lookback,
    # start + grace]; with none, the no-presence rule fires.
    presence_grace_seconds: float = 900.0
    presence_lookback_seconds: float = 1800.0
    communication_buffer_seconds: float = 900.0
    loss_of_location_seconds: float = 900.0
    battery_low_pct: float = 20.0
    battery_recovered_pct: float = 25.0
    battery_flat_pct: float = 5.0
    alcohol_threshold_g_dl: float = 0.02
    alcohol_confirm_samples: int = 3

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = RuleParams()

# How often each kind of device reports when healthy (seconds); loss of communication is
# this plus `communication_buffer_seconds` with no record at all.
REPORTING_INTERVAL_SECONDS: dict[str, float] = {
    "gps_tag": 60.0,
    "rf_tag": 300.0,
    "home_monitoring_unit": 900.0,
    "alcohol_tag": 1800.0,
    "non_fitted_device": 3600.0,
}
