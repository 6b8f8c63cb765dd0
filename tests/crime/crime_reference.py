"""A plain-Python statement of the crime match semantics, written for clarity, not speed.

It parametrises each segment by time (not by the segment's fraction as the matcher does),
walks one (crime, person) pair at a time and solves each segment exactly: the squared distance
of a point moving linearly in time is a quadratic in time, so its minimum over the clipped
interval and the interval where it is within the radius have closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Fix:
    owner: int
    t: int
    x: float
    y: float
    acc: float
    row: int


@dataclass
class Crime:
    crime_id: int
    x: float
    y: float
    t_from: int
    t_to: int


@dataclass
class RefMatch:
    crime_id: int
    owner: int
    closest_distance: float
    closest_time: float
    first_time: float
    last_time: float
    passes: int
    fixes_in_radius: int
    coverage_pct: float
    max_accuracy: float
    labels: list[tuple[int, str]] = field(default_factory=list)
    near_boundary: bool = False  # some distance lies within rounding of the radius


@dataclass
class _Piece:
    """One element of the track clipped to the window: a segment or a lone fix."""

    a: Fix
    b: Fix  # the same fix for a lone fix
    u0: float  # clipped time range
    u1: float
    track: int  # which unbroken track it belongs to


def _position(p: _Piece, u: float) -> tuple[float, float]:
    if p.b.t == p.a.t:
        return p.a.x, p.a.y  # instantaneous: the start point stands for the segment's time
    k = (u - p.a.t) / (p.b.t - p.a.t)
    return p.a.x + k * (p.b.x - p.a.x), p.a.y + k * (p.b.y - p.a.y)


def _closest(p: _Piece, cx: float, cy: float) -> tuple[float, float]:
    """Least distance over the piece and the earliest time it is reached."""
    if p.b.t == p.a.t:
        # Time stands still: every point of the segment is at time t; minimise over space.
        dx, dy = p.b.x - p.a.x, p.b.y - p.a.y
        length2 = dx * dx + dy * dy
        k = 0.0 if length2 == 0 else ((cx - p.a.x) * dx + (cy - p.a.y) * dy) / length2
        k = min(1.0, max(0.0, k))
        return math.hypot(p.a.x + k * dx - cx, p.a.y + k * dy - cy), float(p.a.t)
    dt = p.b.t - p.a.t
    vx, vy = (p.b.x - p.a.x) / dt, (p.b.y - p.a.y) / dt
    speed2 = vx * vx + vy * vy
    if speed2 == 0:
        return math.hypot(p.a.x - cx, p.a.y - cy), p.u0
    u_star = p.a.t - ((p.a.x - cx) * vx + (p.a.y - cy) * vy) / speed2
    u_star = min(p.u1, max(p.u0, u_star))
    x, y = _position(p, u_star)
    return math.hypot(x - cx, y - cy), u_star


def _inside(p: _Piece, cx: float, cy: float, r: float) -> tuple[float, float] | None:
    """The time interval of the piece within the radius, if any."""
    d, u = _closest(p, cx, cy)
    if d > r:
        return None
    if p.b.t == p.a.t:
        return float(p.a.t), float(p.a.t)
    dt = p.b.t - p.a.t
    vx, vy = (p.b.x - p.a.x) / dt, (p.b.y - p.a.y) / dt
    fx, fy = p.a.x - cx, p.a.y - cy
    qa = vx * vx + vy * vy
    if qa == 0:
        return p.u0, p.u1
    qb = fx * vx + fy * vy
    qc = fx * fx + fy * fy - r * r
    disc = max(0.0, qb * qb - qa * qc)
    lo = p.a.t + (-qb - math.sqrt(disc)) / qa
    hi = p.a.t + (-qb + math.sqrt(disc)) / qa
    return max(p.u0, min(lo, u)), min(p.u1, max(hi, u))


def _pieces(fixes: list[Fix], w0: float, w1: float, max_gap: float) -> list[_Piece]:
    pieces: list[_Piece] = []
    track = 0
    n = len(fixes)
    for k, f in enumerate(fixes):
        joined_prev = k > 0 and f.t - fixes[k - 1].t <= max_gap
        joined_next = k + 1 < n and fixes[k + 1].t - f.t <= max_gap
        if not joined_prev:
            track += 1
        if not joined_prev and not joined_next and w0 <= f.t <= w1:
            pieces.append(_Piece(f, f, float(f.t), float(f.t), track))
        if joined_next:
            g = fixes[k + 1]
            u0, u1 = max(float(f.t), w0), min(float(g.t), w1)
            if u0 <= u1:
                pieces.append(_Piece(f, g, u0, u1, track))
    return pieces


def _letters(n: int) -> str:
    out = ""
    n += 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def match_pair(
    crime: Crime, fixes: list[Fix], radius: float, tolerance_ms: float, max_gap_ms: float
) -> RefMatch | None:
    w0 = crime.t_from - tolerance_ms
    w1 = crime.t_to + tolerance_ms
    pieces = _pieces(fixes, w0, w1, max_gap_ms)
    near = False
    best: tuple[float, float] | None = None
    intervals: list[tuple[float, float, int, _Piece]] = []
    for p in pieces:
        d, u = _closest(p, crime.x, crime.y)
        near = near or abs(d - radius) < 1e-6
        if best is None or d < best[0] or (d == best[0] and u < best[1]):
            best = (d, u)
        got = _inside(p, crime.x, crime.y, radius)
        if got is not None:
            intervals.append((got[0], got[1], p.track, p))
    in_window = [f for f in fixes if w0 <= f.t <= w1]
    for f in in_window:
        near = near or abs(math.hypot(f.x - crime.x, f.y - crime.y) - radius) < 1e-6
    if best is None or best[0] > radius:
        return None

    # Passes: intervals of one unbroken track that touch (end == next start) at a fix inside
    # the radius are one pass (an instantaneous jump out and back in is two).
    passes: list[list[float]] = []
    pass_of_fix: dict[int, int] = {}
    last_track = None
    for lo, hi, track, p in intervals:
        continuous = (
            passes
            and track == last_track
            and p.a is not p.b
            and lo == p.a.t
            and passes[-1][1] == lo
            and math.hypot(p.a.x - crime.x, p.a.y - crime.y) <= radius
        )
        if continuous:
            passes[-1][1] = hi
        else:
            passes.append([lo, hi])
        last_track = track
        for f in (p.a, p.b):
            if w0 <= f.t <= w1 and math.hypot(f.x - crime.x, f.y - crime.y) <= radius:
                pass_of_fix.setdefault(f.row, len(passes) - 1)

    labels: list[tuple[int, str]] = []
    counts: dict[int, int] = {}
    inside_fixes = [f for f in in_window if math.hypot(f.x - crime.x, f.y - crime.y) <= radius]
    for f in inside_fixes:
        which = pass_of_fix[f.row]
        counts[which] = counts.get(which, 0) + 1
        labels.append((f.row, f"{_letters(which)}{counts[which]}"))

    # Coverage: time of the window under joined segments with positive duration.
    covered = 0.0
    spans_instant = False
    supporting: set[int] = {f.row for f in in_window}
    for p in pieces:
        if p.a is p.b or p.b.t == p.a.t:
            continue
        covered += p.u1 - p.u0
        spans_instant = spans_instant or (p.a.t <= w0 <= p.b.t)
        if p.u0 < p.b.t and p.u1 > p.a.t:
            supporting.update({p.a.row, p.b.row})
    # A zero-length window is covered when a segment spans its instant.
    coverage = 100.0 * covered / (w1 - w0) if w1 > w0 else (100.0 if spans_instant else 0.0)
    accuracy = {f.row: f.acc for f in fixes}
    return RefMatch(
        crime_id=crime.crime_id,
        owner=fixes[0].owner,
        closest_distance=best[0],
        closest_time=best[1],
        first_time=passes[0][0],
        last_time=passes[-1][1],
        passes=len(passes),
        fixes_in_radius=len(inside_fixes),
        coverage_pct=coverage,
        max_accuracy=max(accuracy[r] for r in supporting),
        labels=labels,
        near_boundary=near,
    )


def match_all(
    crimes: list[Crime], fixes: list[Fix], radius: float, tolerance_ms: float, max_gap_ms: float
) -> dict[tuple[int, int], RefMatch]:
    by_owner: dict[int, list[Fix]] = {}
    for f in fixes:
        by_owner.setdefault(f.owner, []).append(f)
    out: dict[tuple[int, int], RefMatch] = {}
    for c in crimes:
        for owner, track in by_owner.items():
            m = match_pair(c, track, radius, tolerance_ms, max_gap_ms)
            if m is not None:
                out[(c.crime_id, owner)] = m
    return out


def distance_at(fixes: list[Fix], t: float, cx: float, cy: float, max_gap_ms: float) -> float:
    """Least distance of the track's points at time t (several when a segment is instantaneous)."""
    best = math.inf
    for k, f in enumerate(fixes):
        if f.t == t:
            best = min(best, math.hypot(f.x - cx, f.y - cy))
        if k + 1 < len(fixes):
            g = fixes[k + 1]
            if g.t - f.t <= max_gap_ms and f.t <= t <= g.t:
                p = _Piece(f, g, float(f.t), float(g.t), 0)
                if g.t == f.t:
                    best = min(best, _closest(p, cx, cy)[0])
                else:
                    x, y = _position(p, t)
                    best = min(best, math.hypot(x - cx, y - cy))
    return best
