"""Print the results as markdown tables and keep them as JSON under bench/results/.

`python -m bench.report [FILE]` prints the report of a results file (default: latest.json).
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One compared figure: where MedFlow's, the raw floor's and the peer's values are."""

    label: str
    unit: str
    medflow: tuple[str, str]
    raw: tuple[str, str] | None = None
    peer: tuple[str, str] | None = None
    # Target from the issue, on PostgreSQL: (limit, "max" | "min").
    target: tuple[float, str] | None = None
    peer_note: str = ""

    @property
    def is_rate(self) -> bool:
        return self.unit.endswith("/s")


ROWS = [
    Row("1. update_patient, 1 client, p50", "ms", ("service_update", "p50_ms"),
        ("raw_single_insert", "p50_ms"), ("es_command", "p50_ms"), (1.5, "max")),
    Row("1. update_patient, 1 client, p99", "ms", ("service_update", "p99_ms"),
        ("raw_single_insert", "p99_ms"), ("es_command", "p99_ms")),
    Row("1. update_patient, {clients} clients, p50", "ms", ("service_update_concurrent", "p50_ms"),
        ("raw_single_insert_concurrent", "p50_ms"), ("es_command_concurrent", "p50_ms")),
    Row("1. update_patient, {clients} clients, p99", "ms", ("service_update_concurrent", "p99_ms"),
        ("raw_single_insert_concurrent", "p99_ms"), ("es_command_concurrent", "p99_ms")),
    Row("1. update_patient, {clients} clients, all together", "commands/s",
        ("service_update_concurrent", "ops_per_s"), ("raw_single_insert_concurrent", "ops_per_s"),
        ("es_command_concurrent", "ops_per_s")),
    Row("1. register_patient, 1 client, p50", "ms", ("service_register", "p50_ms"),
        ("raw_single_insert", "p50_ms"), ("es_register", "p50_ms")),
    Row("2. bulk append, batches of {batch}", "events/s", ("bulk_append", "events_per_s"),
        ("raw_bulk_insert", "events_per_s"), ("es_bulk_append", "events_per_s")),
    Row("3. load {stream}-event aggregate, no snapshot, p50", "ms", ("load_no_snapshot", "p50_ms"),
        ("raw_select_stream", "p50_ms"), ("es_load_no_snapshot", "p50_ms")),
    Row("3. load {stream}-event aggregate, no snapshot, p99", "ms", ("load_no_snapshot", "p99_ms"),
        ("raw_select_stream", "p99_ms"), ("es_load_no_snapshot", "p99_ms")),
    Row("3. load {stream}-event aggregate, snapshot, p50", "ms", ("load_snapshot", "p50_ms"),
        ("raw_select_snapshot", "p50_ms"), ("es_load_snapshot", "p50_ms"), (2.0, "max")),
    Row("3. load {stream}-event aggregate, snapshot, p99", "ms", ("load_snapshot", "p99_ms"),
        ("raw_select_snapshot", "p99_ms"), ("es_load_snapshot", "p99_ms"), (2.0, "max")),
    Row("4. rebuild all read models, {log_events} events", "events/s",
        ("rebuild_all", "events_per_s"), ("raw_rebuild_floor", "events_per_s"),
        ("es_read_log_decoded", "events_per_s"), (1_000_000 / 30, "min"),
        peer_note="no read models: reads and decodes the whole log"),
    Row("4. rebuild all read models, {log_events} events", "s total", ("rebuild_all", "seconds"),
        ("raw_rebuild_floor", "seconds"), ("es_read_log_decoded", "seconds"), (30.0, "max"),
        peer_note="no read models: reads and decodes the whole log"),
    Row("5. get_patient ({events_stored} events stored), p50", "ms", ("read_patient", "p50_ms"),
        ("raw_read_patient", "p50_ms"), ("es_read_patient", "p50_ms"),
        peer_note="no read model: repository.get of the patient"),
    Row("5. get_patient ({events_stored} events stored), p99", "ms", ("read_patient", "p99_ms"),
        ("raw_read_patient", "p99_ms"), ("es_read_patient", "p99_ms"), (5.0, "max"),
        peer_note="no read model: repository.get of the patient"),
    Row("5. patient_timeline first page, p50", "ms", ("read_timeline_page", "p50_ms"),
        ("raw_read_timeline_page", "p50_ms")),
    Row("5. patient_timeline first page, p99", "ms", ("read_timeline_page", "p99_ms"),
        ("raw_read_timeline_page", "p99_ms"), target=(5.0, "max")),
    Row("5. clinical patient_chart, p50", "ms", ("read_chart", "p50_ms")),
    Row("5. clinical patient_chart, p99", "ms", ("read_chart", "p99_ms"), target=(5.0, "max")),
]

HEADER = ["figure", "unit", "backend", "MedFlow", "raw driver", "÷ raw", "eventsourcing 9.5",
          "÷ es", "target (PostgreSQL)", "verdict"]


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _get(figures: dict, where: tuple[str, str] | None) -> float | None:
    if where is None or where[0] not in figures:
        return None
    return figures[where[0]].get(where[1])


def ratio(row: Row, medflow: float | None, other: float | None) -> str:
    """Return MedFlow's cost over the other's: time over time, or the other's rate over MedFlow's.

    Above 1, MedFlow is slower by that factor.
    """
    if medflow is None or other is None or medflow == 0 or other == 0:
        return "—"
    value = other / medflow if row.is_rate else medflow / other
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def verdict(row: Row, backend: str, value: float | None, context: dict) -> tuple[str, str]:
    """Return the target cell and pass/miss (targets are for PostgreSQL)."""
    if row.target is None:
        return "", ""
    limit, kind = row.target
    shown = f"{'≤' if kind == 'max' else '≥'} {_number(limit)} {row.unit.split()[0]}"
    if backend != "postgresql" or value is None:
        return shown if backend == "postgresql" else "", ""
    if row.medflow[0] == "rebuild_all" and context["log_events"] != 1_000_000:
        size = f"{context['log_events']:,}"
        if row.unit == "s total":
            return shown + " for 1M", f"not judged: measured {size} events, not 1,000,000"
        ok = value >= limit
        return shown + " (1M in 30 s)", ("pass" if ok else "**miss**") + f" (rate at {size} events)"
    ok = value <= limit if kind == "max" else value >= limit
    return shown, "pass" if ok else "**miss**"


def _context(run: dict, workload: dict) -> dict:
    figures = run["figures"]
    return {
        **workload,
        "log_events": figures.get("rebuild_all", {}).get("log_events", workload.get("rebuild_events")),
        "events_stored": figures.get("read_patient", {}).get("events_stored", "?"),
    }


def _fmt_label(label: str, context: dict) -> str:
    return label.format(**{k: f"{v:,}" if isinstance(v, int) else v for k, v in context.items()})


def comparison(runs: list[dict], workload: dict) -> str:
    """Return the main table: one row per figure and backend."""
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join(["---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---",
                             "---"]) + "|"]
    for row in ROWS:
        for run in runs:
            figures = run["figures"]
            peer = run.get("peer", {}).get("figures", {})
            value = _get(figures, row.medflow)
            if value is None:
                continue
            context = _context(run, workload)
            raw, es = _get(figures, row.raw), _get(peer, row.peer)
            target, judged = verdict(row, run["backend"], value, context)
            es_cell = _number(es) if es is not None else "—"
            if es is not None and row.peer_note:
                es_cell += f" ({row.peer_note})"
            lines.append("| " + " | ".join([
                _fmt_label(row.label, context), row.unit, run["backend"], _number(value),
                _number(raw) if raw is not None else "—", ratio(row, value, raw), es_cell,
                ratio(row, value, es), target, judged,
            ]) + " |")
    return "\n".join(lines)


def rebuild_breakdown(runs: list[dict]) -> str:
    """Return the per-projection rebuild table, when a rebuild ran."""
    lines = []
    for run in runs:
        figures = run["figures"]
        rebuild = figures.get("rebuild_all")
        if not rebuild:
            continue
        if not lines:
            lines = ["| backend | projection | kind | tables | events | seconds | events/s |",
                     "|---|---|---|---|---:|---:|---:|"]
        for name, p in rebuild["projections"].items():
            lines.append(f"| {run['backend']} | {name} | {p['kind']} | {', '.join(p['tables'])} |"
                         f" {p['events']:,} | {_number(p['seconds'])} | {_number(p['events_per_s'])} |")
        floor = figures.get("raw_rebuild_floor", {})
        log = figures.get("rebuild_log", {})
        peer = run.get("peer", {}).get("figures", {})
        extra = [("writing the log (store.append, untimed in the rebuild)", log),
                 ("raw floor: one pass, timeline + patient rows", floor),
                 ("raw: reading the log only", {
                     "events": floor.get("events"), "seconds": floor.get("read_only_seconds"),
                     "events_per_s": floor.get("read_only_events_per_s")} if floor else {}),
                 ("eventsourcing: writing the log (save, 1000 events each)", peer.get("es_log", {})),
                 ("eventsourcing: select_notifications only", peer.get("es_read_log", {})),
                 ("eventsourcing: select_notifications + decode", peer.get("es_read_log_decoded", {}))]
        for label, data in extra:
            if data and data.get("seconds") is not None:
                lines.append(f"| {run['backend']} | *{label}* | | | {data['events']:,} |"
                             f" {_number(data['seconds'])} | {_number(data['events_per_s'])} |")
    return "\n".join(lines)


def table(runs: list[dict], workload: dict) -> str:
    """Return every table of the report, in markdown."""
    parts = [comparison(runs, workload)]
    breakdown = rebuild_breakdown(runs)
    if breakdown:
        parts.append(breakdown)
    return "\n\n".join(parts)


def document(summary: dict) -> str:
    """Return the markdown report of a latest.json: what ran, where, and the tables."""
    runs = summary["runs"]
    host = summary["machine"]
    servers = {run["backend"]: run.get("database", {}) for run in runs}
    pg = servers.get("postgresql", {})
    sqlite = servers.get("sqlite", {})
    lines = [
        f"- date (UTC): {summary['utc_time']}",
        f"- command: `{summary['command']}`",
        f"- code measured: {summary['git'].get('path', '')} at {summary['git'].get('commit')}"
        f" (tracked files changed: {summary['git'].get('dirty')})",
        f"- machine: {host['nproc']} CPUs ({host['cpu_model']}), {host['memory_gib']} GiB RAM,"
        f" {host['platform']}, Python {host['python']}",
        f"- load average (1/5/15 min) at start {host.get('load_average_at_start')},"
        f" at end {host.get('load_average_at_end')} (other work on the machine skews the figures)",
    ]
    if sqlite:
        lines.append(f"- SQLite {sqlite.get('version')} (journal {sqlite.get('journal_mode')},"
                     f" synchronous={sqlite.get('synchronous')})")
    if pg:
        lines.append(f"- PostgreSQL {pg.get('version')} (synchronous_commit={pg.get('synchronous_commit')},"
                     f" fsync={pg.get('fsync')}, wal_sync_method={pg.get('wal_sync_method')},"
                     f" shared_buffers={pg.get('shared_buffers')}), same machine")
    for run in runs:
        peer = run.get("peer")
        if peer and peer.get("failed"):
            lines.append(f"- peer on {run['backend']}: **failed** (see the run's log)")
        elif peer:
            lines.append(f"- peer on {run['backend']}: {peer['library']} ({peer['persistence']},"
                         f" {', '.join(f'{k}={v}' for k, v in peer['database'].items() if k != 'vendor')})")
    lines.append(f"- workload: {', '.join(f'{k}={v}' for k, v in summary['workload'].items())}")
    if summary.get("skipped"):
        lines.append(f"- skipped: {summary['skipped']}")
    if summary.get("failed"):
        lines.append(f"- failed: {summary['failed']}")
    return "\n".join(lines) + "\n\n" + table(runs, summary["workload"]) + "\n"


def write(stamp: str, runs: list[dict], summary: dict) -> list[Path]:
    """Write one file per backend run and latest.json with every run; return the paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in runs:
        path = RESULTS / f"{stamp}-{run['backend']}.json"
        path.write_text(json.dumps(run, indent=2) + "\n")
        paths.append(path)
    latest = RESULTS / "latest.json"
    latest.write_text(json.dumps({**summary, "runs": runs}, indent=2) + "\n")
    paths.append(latest)
    return paths


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    sys.stdout.write(document(json.loads(source.read_text())))
