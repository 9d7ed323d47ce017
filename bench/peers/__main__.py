"""Run the eventsourcing peer on one backend: `python -m bench.peers --backend B --db NAME`."""

import argparse
import json
import sys
from pathlib import Path

from bench.options import add_workload_arguments, scenarios_from, workload_from


def main() -> None:
    """Parse the workload, measure the peer, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    add_workload_arguments(parser)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--db", required=True, help="SQLite file or PostgreSQL URL")
    parser.add_argument("--output", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args()

    from bench.peers.eventsourcing_app import measure

    result = measure(args.backend, args.db, workload_from(args), scenarios_from(args))
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
