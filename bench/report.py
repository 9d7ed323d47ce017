"""Print the results as a markdown table and keep them as JSON under bench/results/."""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

LATENCY = ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
# (label, figure, fields, unit)
ROWS = [
    ("update_patient, 1 event/command", "service_update", LATENCY, "ms p50/p95/p99/mean"),
    ("register_patient, 1 event/command", "service_register", LATENCY, "ms p50/p95/p99/mean"),
    ("raw INSERT 1 row + COMMIT", "raw_single_insert", LATENCY, "ms p50/p95/p99/mean"),
    ("store.append, batches of {batch}", "bulk_append", ("events_per_s",), "events/s"),
    ("raw executemany, batches of {batch}", "raw_bulk_insert", ("events_per_s",), "events/s"),
    ("load_aggregate {stream} events, no snapshot", "load_no_snapshot", ("p50_ms", "p99_ms"),
     "ms p50/p99"),
    ("load_aggregate, snapshot at head-{snapshot_lag}", "load_snapshot", ("p50_ms", "p99_ms"),
     "ms p50/p99"),
    ("raw SELECT {stream} rows, no decoding", "raw_select_stream", ("p50_ms", "p99_ms"),
     "ms p50/p99"),
]


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(runs: list[dict], workload: dict) -> str:
    """Return one markdown row per figure, one column per backend."""
    header = ["figure", "unit", *(run["backend"] for run in runs)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---", *("---:" for _ in runs)]) + "|",
    ]
    for label, key, names, unit in ROWS:
        cells = [
            " / ".join(_number(run["figures"][key][name]) for name in names) for run in runs
        ]
        lines.append("| " + " | ".join([label.format(**workload), unit, *cells]) + " |")
    return "\n".join(lines)


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
