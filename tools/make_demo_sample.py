"""Convert the first N patients of a Synthea CSV export into the demo sample shipped in the repo.

Usage: python tools/make_demo_sample.py ../shared/data/synthea-ca/csv 25
Synthea appends digits to names to keep them unique ("Maude482"); the sample drops them.
"""

import csv
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/medflow/demo/data/patients.csv"
SEX = {"F": "female", "M": "male"}


def clean(name: str) -> str:
    return re.sub(r"\d+", "", name).strip()


def main() -> None:
    source, count = Path(sys.argv[1]), int(sys.argv[2])
    with (source / "patients.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    fields = ["source_id", "mrn", "given_names", "family_name", "birth_date", "sex",
              "line", "city", "state", "postal_code"]
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for n, row in enumerate(rows, start=1):
            writer.writerow({
                "source_id": row["Id"], "mrn": f"MRN-{n:05d}",
                "given_names": clean(row["FIRST"]), "family_name": clean(row["LAST"]),
                "birth_date": row["BIRTHDATE"], "sex": SEX.get(row["GENDER"], "unknown"),
                "line": row["ADDRESS"], "city": row["CITY"], "state": row["STATE"],
                "postal_code": row["ZIP"],
            })
    print(f"wrote {len(rows)} patients to {OUT}")


if __name__ == "__main__":
    main()
