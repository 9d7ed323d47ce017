"""The workload of a benchmark run: sizes shared by the parent and each backend process."""

import argparse
from dataclasses import asdict, dataclass, fields

# Sizes of `--quick`: a smoke run of both backends and the eventsourcing peer in about a minute.
QUICK = {"n": 200, "events": 5_000, "stream": 1_000, "loads": 10, "rebuild_events": 20_000,
         "reads": 200, "partition_events": 36_000, "partition_loads": 100,
         "search_patients": 10_000, "searches": 120}

# The scenarios, in the order they run; `--only` picks some of them.
SCENARIOS = ("service", "concurrent", "bulk", "load", "rebuild", "reads", "partitions", "search")


@dataclass(frozen=True)
class Workload:
    """How much work each scenario does."""

    n: int = 2_000  # service commands, and raw single-row inserts (1 client and 8 clients)
    events: int = 100_000  # events of the bulk append, and of the raw bulk insert
    batch: int = 1_000  # events per bulk append (one transaction each)
    stream: int = 10_000  # length of the stream that aggregate loads read
    loads: int = 50  # timed loads per variant
    patients: int = 0  # patients the updates rotate over; 0: n // 10, at least 10
    snapshot_lag: int = 10  # events between the snapshot and the head of the long stream
    clients: int = 8  # concurrent client processes of the concurrent scenario
    rebuild_events: int = 1_000_000  # events in the log that the projections are rebuilt from
    rebuild_batch: int = 5_000  # log page of the rebuild, its raw floor and the peer's read
    events_per_patient: int = 50  # stream length of the rebuild log (registration + updates)
    reads: int = 2_000  # timed patient reads (random patients) on the rebuilt read models
    partition_events: int = 360_000  # other events in event_store beside the streams loaded
    partition_months: int = 36  # monthly partitions of the many-partitions variant
    partition_stream: int = 360  # events per stream loaded in the partitions scenario
    partition_loads: int = 300  # timed stream loads (and log pages) per partition variant
    search_patients: int = 100_000  # patients in the read model the search runs over
    searches: int = 240  # timed patient searches (six kinds in turn)

    @property
    def patient_count(self) -> int:
        """Return how many patients the service updates rotate over."""
        return self.patients or max(10, self.n // 10)

    @property
    def rebuild_patients(self) -> int:
        """Return how many patients the rebuild log holds."""
        return max(1, self.rebuild_events // self.events_per_patient)

    def as_dict(self) -> dict:
        """Return the workload as JSON-ready data."""
        return {**asdict(self), "patients": self.patient_count,
                "rebuild_patients": self.rebuild_patients}

    def as_args(self) -> list[str]:
        """Return command-line flags that rebuild this workload in another process."""
        return [
            arg for f in fields(self) for arg in (f"--{f.name.replace('_', '-')}",
                                                  str(getattr(self, f.name)))
        ]


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per workload size, plus --quick and --only."""
    parser.add_argument(
        "--quick", action="store_true",
        help=f"CI-size smoke run ({', '.join(f'{k}={v}' for k, v in QUICK.items())})",
    )
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), metavar="LIST",
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})",
    )
    defaults = Workload()
    for f in fields(Workload):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=int, default=None, metavar="N",
            help=f"default {getattr(defaults, f.name)}",
        )


def scenarios_from(args: argparse.Namespace) -> list[str]:
    """Return the scenarios asked for by --only, in run order."""
    asked = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = asked - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    return [name for name in SCENARIOS if name in asked]


def workload_from(args: argparse.Namespace) -> Workload:
    """Build the workload: defaults, then --quick sizes, then explicit flags."""
    values = dict(QUICK) if args.quick else {}
    for f in fields(Workload):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = given
    workload = Workload(**values)
    if workload.n < 2 or workload.loads < 2 or workload.reads < 2:
        raise SystemExit("--n, --loads and --reads must be at least 2 (percentiles need two samples)")
    if workload.events < workload.batch or workload.batch < 1:
        raise SystemExit("--events must be at least --batch, and --batch at least 1")
    if not 0 < workload.snapshot_lag < workload.stream:
        raise SystemExit("--snapshot-lag must be between 1 and --stream - 1")
    if workload.clients < 1 or workload.n < 2 * workload.clients:
        raise SystemExit("--clients must be at least 1, and --n at least twice --clients")
    if workload.rebuild_batch < 1:
        raise SystemExit("--rebuild-batch must be at least 1")
    if workload.events_per_patient < 2 or workload.rebuild_events < workload.events_per_patient:
        raise SystemExit("--events-per-patient must be at least 2 and at most --rebuild-events")
    if workload.partition_months < 2 or workload.partition_stream < workload.partition_months:
        raise SystemExit("--partition-months must be at least 2, and --partition-stream at least"
                         " --partition-months (the spread stream has events in every month)")
    if workload.partition_loads < 2 or workload.searches < 2 or workload.search_patients < 100:
        raise SystemExit("--partition-loads and --searches must be at least 2, and"
                         " --search-patients at least 100")
    return workload
