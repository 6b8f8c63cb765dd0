"""`tagwatch simulate ...`: synthetic cohorts and device feeds."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

simulate_app = typer.Typer(help="Synthetic cohorts and device feeds", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(simulate_app, name="simulate")


def _date(text: str | None) -> dt.date:
    return dt.date.fromisoformat(text) if text else dt.datetime.now(dt.UTC).date()


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _write_json(document: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


class _ScenarioFile:
    """Appends ground-truth entries to an NDJSON file as they are produced."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")

    def append(self, entry: dict[str, Any]) -> None:
        self.file.write(json.dumps(entry, sort_keys=True) + "\n")

    def close(self) -> None:
        self.file.close()


def _scenario_path(out: Path) -> Path:
    name = out.name.removesuffix(".gz").removesuffix(".ndjson").removesuffix(".csv")
    return out.with_name(f"{name}.scenario.ndjson")


def _feed_to(
    cohort: dict[str, Any], start: dt.datetime, days: float, seed: int, out: Path, csv: bool
) -> int:
    from rich.progress import Progress

    from tagwatch.simulate.devices import life_days, simulate_blocks
    from tagwatch.simulate.wearers import wearers
    from tagwatch.simulate.writers import write_gps_csv, write_ndjson

    total = len(wearers(cohort)) * len(life_days(start, days))
    scenario = _ScenarioFile(_scenario_path(out))
    try:
        with Progress() as progress:
            task = progress.add_task("Wearer-days simulated", total=total)

            def records() -> Iterator[dict[str, Any]]:
                for _, block in simulate_blocks(cohort, start, days, seed, scenario):
                    for _, record in block:
                        yield record
                    progress.advance(task)

            return write_gps_csv(records(), out) if csv else write_ndjson(records(), out)
    finally:
        scenario.close()


@simulate_app.command("cohort")
def cohort_command(
    people: int = typer.Option(100, "--people", min=1),
    seed: int = typer.Option(1, "--seed"),
    start: str = typer.Option(None, "--start", help="YYYY-MM-DD (default: today)"),
    out: Path = typer.Option(Path("cohort.json"), "--out"),
) -> None:
    """Write a synthetic cohort in order format v1."""
    from tagwatch.simulate.cohort import generate_cohort

    _write_json(generate_cohort(people, seed, _date(start)), out)
    typer.echo(f"{people} people written to {out}")


@simulate_app.command("feed")
def feed_command(
    cohort: Path = typer.Option(..., "--cohort", exists=True, dir_okay=False),
    days: float = typer.Option(1.0, "--days", min=0.0),
    seed: int = typer.Option(1, "--seed"),
    start: str = typer.Option(None, "--start", help="YYYY-MM-DD, midnight UTC (default: today)"),
    out: Path = typer.Option(Path("feed.ndjson"), "--out"),
    csv: bool = typer.Option(False, "--csv", help="GPS records only, in the CSV form"),
) -> None:
    """Write device feed v1 records for a cohort, and the scenario log next to them."""
    document = json.loads(cohort.read_text(encoding="utf-8"))
    count = _feed_to(document, _midnight(_date(start)), days, seed, out, csv)
    typer.echo(f"{count} records written to {out}; ground truth in {_scenario_path(out)}")


@simulate_app.command("run")
def run_command(
    people: int = typer.Option(25_000, "--people", min=1),
    days: float = typer.Option(1.0, "--days", min=0.0),
    seed: int = typer.Option(1, "--seed"),
    start: str = typer.Option(None, "--start", help="YYYY-MM-DD (default: today)"),
    out: Path = typer.Option(Path("simulation"), "--out", file_okay=False),
    csv: bool = typer.Option(False, "--csv"),
) -> None:
    """Generate a cohort and its feed into a directory."""
    from tagwatch.simulate.cohort import generate_cohort

    out.mkdir(parents=True, exist_ok=True)
    day = _date(start)
    document = generate_cohort(people, seed, day)
    _write_json(document, out / "cohort.json")
    feed = out / ("feed.csv" if csv else "feed.ndjson.gz")
    count = _feed_to(document, _midnight(day), days, seed, feed, csv)
    typer.echo(f"cohort.json, {feed.name} ({count} records) and the scenario log in {out}")


@simulate_app.command("live")
def live_command(
    cohort: Path = typer.Option(..., "--cohort", exists=True, dir_okay=False),
    url: str = typer.Option("http://127.0.0.1:8000", "--url"),
    token: str = typer.Option(..., "--token", envvar="TAGWATCH_DEVICE_TOKEN"),
    speed: float = typer.Option(1.0, "--speed", min=0.001),
    days: float = typer.Option(1.0, "--days", min=0.0),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """Replay a cohort's simulated feed to a server from now, in real time or faster."""
    from tagwatch.simulate.live import feed_live

    document = json.loads(cohort.read_text(encoding="utf-8"))
    sent = feed_live(document, url, token, speed, days=days, seed=seed)
    typer.echo(f"{sent} records sent to {url}")
