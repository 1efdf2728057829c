"""Benchmark: `batchpay report` of a 50,000-row run as a whole process, beside plain writers.

    python scripts/bench_report.py                  # 50,000 rows
    python scripts/bench_report.py --rows 10000

Setup (once, not timed): a journal holding one run of ROWS rows, planned from a generated
payout file (``bench_validate.generate``) exactly as ``batchpay run`` plans it, with nothing
sent. Then, alternating, each in a fresh child process timed like ``/usr/bin/time`` (wall
clock; CPU user + sys and peak RSS of the child from ``os.wait4``):

* ``batchpay report RUN --journal J --out DIR``: the journal read, the report built, and its
  XLSX (Summary + Rows), rows CSV, totals CSV and JSON written;
* the baseline: the same run's rows read from the same journal with ``sqlite3`` and written,
  unstyled, by a write-only ``openpyxl`` workbook and by ``csv.writer``.

The ratio printed is batchpay's best wall time over the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_cli_validate import Measured, run  # noqa: E402
from bench_validate import generate  # noqa: E402

BASELINE = """
import csv, sqlite3, sys
import openpyxl
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT * FROM rows WHERE run_id = ? ORDER BY row_number", (sys.argv[2],))
names = [d[0] for d in rows.description]
data = rows.fetchall()
book = openpyxl.Workbook(write_only=True)
sheet = book.create_sheet("Rows")
sheet.append(names)
for r in data:
    sheet.append(list(r))
book.save(sys.argv[3] + "/rows.xlsx")
with open(sys.argv[3] + "/rows.csv", "w", newline="", encoding="utf-8") as fh:
    out = csv.writer(fh)
    out.writerow(names)
    out.writerows(data)
"""


def seed(journal: Path, rows: int) -> str:
    """A journal with one planned run of ``rows`` rows; its run id."""
    from batchpay import checks, planning
    from batchpay.options import RunOptions
    from batchpay.source import from_path

    csv_path = Path(f"/tmp/batchpay-bench-{rows}-{max(1, rows // 10)}.csv")
    if not csv_path.exists():
        generate(csv_path, rows, beneficiaries=max(1, rows // 10))
    options = RunOptions()
    checked = checks.check_file(from_path(csv_path, checks.load_layout(options)), options)
    from batchpay.journal import Journal

    env = "sandbox|bench"
    with Journal(journal) as j:
        return j.create_run(
            environment=env,
            api_url="http://127.0.0.1:1",
            mode="sandbox",
            file={
                "sha256": checked.ingested.sha256,
                "fingerprint": checked.fingerprint,
                "name": csv_path.name,
                "size": checked.source.size,
                "format": "csv",
                "row_count": checked.row_count,
            },
            rows=planning.row_records(checked, j, env),
            options={},
        )


def main() -> None:
    """Seed the journal once, then time `batchpay report` and the baseline alternately."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best kept)")
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(json.dumps({"run_id": seed(args.seed, args.rows)}))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    journal = work / "journal.db"
    env = {**os.environ, "BATCHPAY_HOME": str(work / "home")}
    # The journal is seeded in its own process: the timed children start from nothing.
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--rows", str(args.rows), "--seed", str(journal)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    batchpay = shutil.which("batchpay") or str(Path(sys.executable).parent / "batchpay")
    ours: list[Measured] = []
    base: list[Measured] = []
    for i in range(args.repeat):
        mine, plain = work / f"ours-{i}", work / f"plain-{i}"
        plain.mkdir()
        argv = [batchpay, "report", run_id, "--journal", str(journal), "--out", str(mine)]
        ours.append(run(argv, env))
        base.append(run([sys.executable, "-c", BASELINE, str(journal), run_id, str(plain)], env))
    print(f"report of {args.rows:,} rows (XLSX + CSV + JSON), best of {args.repeat}:")
    for name, ms in (("batchpay report", ours), ("write-only openpyxl + csv", base)):
        best = min(ms, key=lambda m: m.wall)
        print(
            f"  {name:26} {best.wall:7.2f} s wall  {best.cpu:7.2f} s CPU  "
            f"{max(m.rss_mib for m in ms):7.0f} MiB peak RSS"
        )
    print(f"  ratio (wall): {min(m.wall for m in ours) / min(m.wall for m in base):.2f}x")
    print(f"  ratio (CPU):  {min(m.cpu for m in ours) / min(m.cpu for m in base):.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
