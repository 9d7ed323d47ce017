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
    Row("5. clinical patient_chart, p50", "ms", ("read_chart", "p50_ms"),
        ("raw_read_chart", "p50_ms")),
    Row("5. clinical patient_chart, p99", "ms", ("read_chart", "p99_ms"),
        ("raw_read_chart", "p99_ms"), target=(5.0, "max")),
    Row("6. patient search, {search_patients} patients, all kinds, p50", "ms",
        ("search_all", "p50_ms"), ("raw_search_all", "p50_ms")),
    Row("6. patient search, {search_patients} patients, all kinds, p99", "ms",
        ("search_all", "p99_ms"), ("raw_search_all", "p99_ms"), target=(20.0, "max")),
    *[Row(f"6. patient search by {label}, p99", "ms", (f"search_{kind}", "p99_ms"),
          (f"raw_search_{kind}", "p99_ms"), target=(20.0, "max"))
      for kind, label in (("family", "family name"), ("unaccented", "name without accents"),
                          ("typo", "name with a typo"), ("full_name", "given + family name"),
                          ("mrn", "exact MRN"), ("phone", "phone number"))],
    *[Row(f"7. load {{partition_stream}}-event stream, {label}, {stat}", "ms",
          (f"partition_load_{variant}", f"{stat}_ms"), (f"raw_partition_load_{variant}",
                                                        f"{stat}_ms"))
      for variant, label in (("1", "1 monthly partition"),
                             ("many_young", "{partition_months} partitions, stream in 1 month"),
                             ("many_spread", "{partition_months} partitions, stream over all"))
      for stat in ("p50", "p99")],
    *[Row(f"7. log page of {{batch}} events, {label}, {stat}", "ms",
          (f"partition_page_{variant}", f"{stat}_ms"), (f"raw_partition_page_{variant}",
                                                        f"{stat}_ms"))
      for variant, label in (("1", "1 monthly partition"),
                             ("many_young", "{partition_months} partitions"))
      for stat in ("p50", "p99")],
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
            # One pass feeds every projection: only the whole rebuild has a time. (Results
            # of older runs timed each projection on its own pass.)
            seconds = _number(p["seconds"]) if "seconds" in p else "(one pass)"
            rate = _number(p["events_per_s"]) if p["events"] and "events_per_s" in p else "—"
            lines.append(f"| {run['backend']} | {name} | {p['kind']} | {', '.join(p['tables'])} |"
                         f" {p['events']:,} | {seconds} | {rate} |")
        lines.append(f"| {run['backend']} | *all, one pass* | | | {rebuild['log_events']:,} |"
                     f" {_number(rebuild['seconds'])} | {_number(rebuild['events_per_s'])} |")
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


PARTITION_VARIANTS = (
    ("1", "1 monthly partition (+ default)"),
    ("many_young", "{months} monthly partitions (+ default), stream in this month"),
    ("many_spread", "{months} monthly partitions (+ default), stream over all {months} months"),
)


def partition_breakdown(runs: list[dict]) -> str:
    """Return the partitions table: each variant's cost beside 1 partition, and its statements
    beside the same ones on an unpartitioned copy (plain driver, timed in the same loop)."""
    lines = []
    for run in runs:
        figures = run["figures"]
        setup = figures.get("partition_setup")
        if not setup:
            continue
        if not lines:
            lines = ["| backend | event_store | load p50 | load p99 | ÷ 1 partition (p50) |"
                     " raw select p50 | unpartitioned p50 | ÷ unpartitioned |"
                     " log page p50 | log page p99 | raw page p50 | unpartitioned p50 |"
                     " ÷ unpartitioned |",
                     "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        one = figures["partition_load_1"]["p50_ms"]
        for variant, label in PARTITION_VARIANTS:
            load = figures[f"partition_load_{variant}"]
            rawload = figures[f"raw_partition_load_{variant}"]["p50_ms"]
            plain = figures[f"raw_plain_load_{variant}"]["p50_ms"]
            cells = [_number(load["p50_ms"]), _number(load["p99_ms"]),
                     f"{load['p50_ms'] / one:.2f}x", _number(rawload), _number(plain),
                     f"{rawload / plain:.2f}x"]
            page = figures.get(f"partition_page_{variant}")
            if page:
                rawpage = figures[f"raw_partition_page_{variant}"]["p50_ms"]
                plainpage = figures[f"raw_plain_page_{variant}"]["p50_ms"]
                cells += [_number(page["p50_ms"]), _number(page["p99_ms"]), _number(rawpage),
                          _number(plainpage), f"{rawpage / plainpage:.2f}x"]
            else:
                cells += ["—"] * 5
            lines.append(f"| {run['backend']} | {label.format(months=setup['months'])} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


SEARCH_KINDS = ("family", "unaccented", "typo", "full_name", "mrn", "phone")


def search_breakdown(runs: list[dict]) -> str:
    """Return the search table: each kind's latencies and how many patients it found."""
    lines = []
    for run in runs:
        figures = run["figures"]
        if "search_all" not in figures:
            continue
        if not lines:
            lines = ["| backend | query kind | p50 ms | p99 ms | raw p50 ms | raw p99 ms |"
                     " patients found (mean) | searches that found none |",
                     "|---|---|---:|---:|---:|---:|---:|---:|"]
        for kind in SEARCH_KINDS:
            got, floor = figures[f"search_{kind}"], figures[f"raw_search_{kind}"]
            lines.append(f"| {run['backend']} | {kind} | {_number(got['p50_ms'])} |"
                         f" {_number(got['p99_ms'])} | {_number(floor['p50_ms'])} |"
                         f" {_number(floor['p99_ms'])} | {got['matches_mean']} |"
                         f" {got['found_none']} of {got['count']} |")
    return "\n".join(lines)


def verdicts(runs: list[dict], workload: dict) -> str:
    """Return the checklist: each PostgreSQL target met or missed, and each figure ahead of the
    eventsourcing library or behind it (on its backend)."""
    targets, peers = [], []
    for row in ROWS:
        for run in runs:
            figures = run["figures"]
            value = _get(figures, row.medflow)
            if value is None:
                continue
            context = _context(run, workload)
            label = f"{_fmt_label(row.label, context)} ({run['backend']})"
            shown, judged = verdict(row, run["backend"], value, context)
            if judged:
                targets.append(f"- {label}: {_number(value)} {row.unit.split()[0]},"
                               f" target {shown}: {judged}")
            es = _get(run.get("peer", {}).get("figures", {}), row.peer)
            if es is not None:
                ahead = value > es if row.is_rate else value < es
                peers.append(f"- {label}: MedFlow {_number(value)}, eventsourcing {_number(es)}"
                             f" {row.unit}: {'ahead' if ahead else '**behind**'}"
                             + (f" ({row.peer_note})" if row.peer_note else ""))
    parts = []
    if targets:
        parts.append("Targets (PostgreSQL):\n\n" + "\n".join(targets))
    if peers:
        parts.append("Against eventsourcing 9.5 on the same database:\n\n" + "\n".join(peers))
    return "\n\n".join(parts)


def table(runs: list[dict], workload: dict) -> str:
    """Return every table of the report, in markdown."""
    parts = [comparison(runs, workload)]
    for extra in (rebuild_breakdown(runs), search_breakdown(runs), partition_breakdown(runs)):
        if extra:
            parts.append(extra)
    return "\n\n".join(parts)


def document(summary: dict) -> str:
    """Return the markdown report of a results file (a whole run's, or one backend's): what
    ran, where, the tables and the checklist."""
    if "runs" not in summary:  # one backend's file
        summary = {**summary, "runs": [summary]}
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
    checklist = verdicts(runs, summary["workload"])
    return ("\n".join(lines) + "\n\n" + table(runs, summary["workload"]) + "\n"
            + (f"\n{checklist}\n" if checklist else ""))


def write(stamp: str, runs: list[dict], summary: dict) -> list[Path]:
    """Write one file per backend run, and <stamp>.json and latest.json with every run; return
    the paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in runs:
        path = RESULTS / f"{stamp}-{run['backend']}.json"
        path.write_text(json.dumps(run, indent=2) + "\n")
        paths.append(path)
    # The whole run under its own name too: latest.json is overwritten by the next run.
    text = json.dumps({**summary, "runs": runs}, indent=2) + "\n"
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    sys.stdout.write(document(json.loads(source.read_text())))
