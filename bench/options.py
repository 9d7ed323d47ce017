"""The workload of a benchmark run: sizes shared by the parent and each backend process."""

import argparse
from dataclasses import asdict, dataclass, fields

# Sizes of `--quick`: a smoke run of both backends in well under a minute.
QUICK = {"n": 200, "events": 5_000, "stream": 1_000, "loads": 10}


@dataclass(frozen=True)
class Workload:
    """How much work each scenario does."""

    n: int = 2_000  # service commands, and raw single-row inserts
    events: int = 100_000  # events of the bulk append, and of the raw bulk insert
    batch: int = 1_000  # events per bulk append (one transaction each)
    stream: int = 10_000  # length of the stream that aggregate loads read
    loads: int = 50  # timed loads per variant
    patients: int = 0  # patients the updates rotate over; 0: n // 10, at least 10
    snapshot_lag: int = 10  # events between the snapshot and the head of the long stream

    @property
    def patient_count(self) -> int:
        """Return how many patients the service updates rotate over."""
        return self.patients or max(10, self.n // 10)

    def as_dict(self) -> dict:
        """Return the workload as JSON-ready data."""
        return {**asdict(self), "patients": self.patient_count}

    def as_args(self) -> list[str]:
        """Return command-line flags that rebuild this workload in another process."""
        return [
            arg for f in fields(self) for arg in (f"--{f.name.replace('_', '-')}",
                                                  str(getattr(self, f.name)))
        ]


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per workload size, plus --quick."""
    parser.add_argument(
        "--quick", action="store_true",
        help=f"CI-size smoke run ({', '.join(f'{k}={v}' for k, v in QUICK.items())})",
    )
    defaults = Workload()
    for f in fields(Workload):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=int, default=None, metavar="N",
            help=f"default {getattr(defaults, f.name)}",
        )


def workload_from(args: argparse.Namespace) -> Workload:
    """Build the workload: defaults, then --quick sizes, then explicit flags."""
    values = dict(QUICK) if args.quick else {}
    for f in fields(Workload):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = given
    workload = Workload(**values)
    if workload.n < 2 or workload.loads < 2:
        raise SystemExit("--n and --loads must be at least 2 (percentiles need two samples)")
    if workload.events < workload.batch or workload.batch < 1:
        raise SystemExit("--events must be at least --batch, and --batch at least 1")
    if not 0 < workload.snapshot_lag < workload.stream:
        raise SystemExit("--snapshot-lag must be between 1 and --stream - 1")
    return workload
