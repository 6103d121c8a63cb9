"""``homeiq quality``: the data-quality report, read from metadata.db.

Offline by design: it reads the day a running HomeIQ last saved (every minute, and at
stop) and rebuilds the report from those counters, as of that save, the way the API
builds it live. The registry and the open gaps are read from the same file.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from homeiq.cli.output import positive_int, table
from homeiq.errors import ConfigError
from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.maintenance.quality.report import GroupQuality, QualityReport


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _group_row(group: GroupQuality) -> tuple[object, ...]:
    c = group.completeness
    return (
        group.name or "(all)",
        _score(group.score),
        group.entities,
        group.counts.events,
        _pct(c["context_id"]),
        _pct(c["device_id"]),
        _pct(c["area_id"]),
        _pct(group.unavailable_share),
        group.stale_entities,
        group.flagged_entities,
        group.excluded,
    )


def render(report: QualityReport, history: list[tuple[str, float | None, int]], worst: int) -> str:
    """The readable report: overall, per domain, stale and worst entities, history."""
    from homeiq.pipeline.normalize import format_time_us

    o, p = report.overall, report.pipeline
    lines = [
        f"data quality on {report.day} (as of {format_time_us(report.as_of_us)})",
        f"score: {_score(o.score)}   events: {o.counts.events} (live {o.counts.live},"
        f" backfilled {_pct(o.backfilled_share)})   entities: {o.entities}"
        f" (flagged {o.flagged_entities}, stale {o.stale_entities})",
        f"completeness: context_id {_pct(o.completeness['context_id'])}"
        f"  device_id {_pct(o.completeness['device_id'])}"
        f"  area_id {_pct(o.completeness['area_id'])}",
        f"unavailable/unknown: {_pct(o.unavailable_share)}   late: {o.counts.late}"
        f"   out of order: {o.counts.out_of_order}   duplicates prevented: {p.duplicates}",
        f"dead letters: {sum(p.dead_letters.values())} (rate {_pct(report.dead_letter_rate)})"
        + "".join(f"  {reason} {n}" for reason, n in sorted(p.dead_letters.items())),
        f"open gaps: {report.open_gaps} ({_duration(report.open_gap_s)} of the last 24 h)"
        f"   excluded: {o.excluded}",
        "",
    ]
    headers = ["domain", "score", "entities", "events", "context", "device", "area"]
    headers += ["unavailable", "stale", "flagged", "excluded"]
    lines += [table(headers, [_group_row(g) for g in report.domains]), ""]
    stale = [e for e in report.entities if e.stale]
    if stale:
        rows = [(e.entity_id, _duration(e.silent_s), _duration(e.usual_interval_s)) for e in stale]
        lines += [table(("stale entity", "silent for", "usual interval"), rows), ""]
    else:
        lines += ["stale entities: none", ""]
    flagged = [e for e in report.worst() if e.flags][:worst]
    if flagged:
        rows = [(e.entity_id, _score(e.score), " ".join(e.flags)) for e in flagged]
        lines += [table(("worst entity", "score", "flags"), rows), ""]
    else:
        lines += ["flagged entities: none", ""]
    if history:
        days = [(day, _score(score), events) for day, score, events in history]
        lines.append(table(("day", "score", "events"), days))
    return "\n".join(lines).rstrip()


def cmd_quality(settings: Settings, args: argparse.Namespace) -> int:
    """Print the data-quality report of the last day saved."""
    from homeiq.maintenance.quality.history import QualityHistory
    from homeiq.maintenance.quality.measures import expected_in
    from homeiq.maintenance.quality.report import build_report
    from homeiq.maintenance.quality.tracker import MIN_EVENTS, STALE_MIN_S
    from homeiq.metadata.registry import Registry
    from homeiq.metadata.store import METADATA_DB, MetadataStore

    path = settings.data_dir / METADATA_DB
    if not path.exists():
        raise ConfigError("HOMEIQ_DATA_DIR", f"no metadata at {path} (run homeiq first)")
    metadata = MetadataStore.in_dir(settings.data_dir, readonly=True)
    try:
        history = QualityHistory(metadata)
        day = history.last_day()
        saved = history.load_day(day) if day is not None else None
        if saved is None:
            print("no data quality saved yet: HomeIQ saves it every minute while it runs")
            return 0
        registry = Registry(metadata.load_registry())
        gaps = metadata.gaps()
        days = history.days(limit=args.days) if args.days else []
    finally:
        metadata.close()

    report = build_report(
        saved.day,
        saved.states,
        lambda entity_id: expected_in(registry, entity_id),
        saved.pipeline,
        gaps,
        saved.saved_at,
        STALE_MIN_S if saved.stale_min_s is None else saved.stale_min_s,
        MIN_EVENTS,
    )
    rows = [(d.day, d.score, d.events) for d in days]
    print(render(report, rows, args.worst))
    return 0


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = -1
    if not 0 <= days <= 400:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, 0 to 400, not {text!r}")
    return days


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``quality`` to the ``homeiq`` parser."""
    p = sub.add_parser(
        "quality",
        help="data-quality report: completeness, stale, late and worst entities, history",
        description=(
            "Print the data-quality report of the last day a running HomeIQ saved"
            " (it saves every minute and at stop): overall and per-domain measures,"
            " stale entities, the worst entities and the daily scores."
        ),
    )
    p.add_argument("--worst", type=positive_int, default=10, help="worst entities to list")
    p.add_argument("--days", type=_days, default=7, help="days of score history to list, 0 to 400")
    p.set_defaults(func=cmd_quality)
