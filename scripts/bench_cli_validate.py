"""Benchmark: `batchpay validate` as a whole process, beside a plain reader of the same file.

    python scripts/bench_cli_validate.py                    # CSV, 1,000,000 rows
    python scripts/bench_cli_validate.py --rows 200000
    python scripts/bench_cli_validate.py --format xlsx --rows 100000   # needs fastexcel

Each measurement is a fresh child process, timed as ``/usr/bin/time`` would: wall clock, CPU
(user + sys of the child, from ``os.wait4``) and its peak RSS. The baseline runs in the same
invocation, on the same file, alternating with batchpay:

* CSV:  ``python -c "import polars; polars.read_csv(FILE)"``
* XLSX: ``python -c "import fastexcel; fastexcel.read_excel(FILE).load_sheet(0).to_polars()"``
  (fastexcel is not a dependency of batchpay: ``pip install -e '.[bench]'`` to measure)

The file is generated once (deterministic, every row valid) by ``bench_validate.generate``;
``batchpay validate`` runs in a fresh home (an empty journal), as a first look at a new file.
The ratio printed is batchpay's best wall time over the baseline's best.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_validate import generate  # noqa: E402  (the generator lives beside this script)

BASELINES = {
    "csv": "import sys, polars; polars.read_csv(sys.argv[1])",
    "xlsx": "import sys, fastexcel; fastexcel.read_excel(sys.argv[1]).load_sheet(0).to_polars()",
}


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, CPU seconds (user + sys), peak RSS in MiB, exit."""

    wall: float
    cpu: float
    rss_mib: float
    code: int


def run(argv: list[str], env: dict[str, str]) -> Measured:
    """Run ``argv`` to its end; its own resource usage, not this process's."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[:3]} exited {code}: {err.strip()[-500:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


def xlsx_from_csv(csv_path: Path, xlsx_path: Path) -> None:
    """The CSV's rows as a workbook of text cells (what accounting exports)."""
    import openpyxl
    import polars as pl

    frame = pl.read_csv(csv_path, infer_schema=False)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Payouts")
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append(["" if v is None else v for v in row])
    book.save(xlsx_path)


def main() -> None:
    """Generate the file if needed, then time batchpay and the baseline alternately."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--beneficiaries", type=int, help="distinct payees (default rows / 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best kept)")
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.format == "csv" else 100_000)
    payees = args.beneficiaries or max(1, rows // 10)
    csv_path = Path(f"/tmp/batchpay-bench-{rows}-{payees}.csv")
    path = csv_path if args.format == "csv" else csv_path.with_suffix(".xlsx")
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        if not csv_path.exists():
            generate(csv_path, rows, beneficiaries=payees)
        if path != csv_path:
            xlsx_from_csv(csv_path, path)
        # A fresh process measures: a child's peak RSS must not start from the generator's.
        os.execv(sys.executable, [sys.executable, *sys.argv])
    batchpay = shutil.which("batchpay") or str(Path(sys.executable).parent / "batchpay")
    home = tempfile.mkdtemp(prefix="bench-cli-validate-")
    env = {**os.environ, "BATCHPAY_HOME": home}
    ours: list[Measured] = []
    base: list[Measured] = []
    for _ in range(args.repeat):
        ours.append(run([batchpay, "validate", str(path)], env))
        base.append(run([sys.executable, "-c", BASELINES[args.format], str(path)], env))
    shutil.rmtree(home, ignore_errors=True)
    size = path.stat().st_size / 2**20
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # a shared machine: say how busy
    print(f"{args.format.upper()} {rows:,} rows ({size:.0f} MiB), best of {args.repeat}:")
    print(f"  load average after the runs: {load} (1, 5, 15 min; {os.cpu_count()} CPUs)")
    label = "polars.read_csv" if args.format == "csv" else "fastexcel"
    for name, ms in (("batchpay validate", ours), (label, base)):
        best = min(ms, key=lambda m: m.wall)
        print(
            f"  {name:18} {best.wall:7.2f} s wall  {best.cpu:7.2f} s CPU  "
            f"{max(m.rss_mib for m in ms):7.0f} MiB peak RSS"
        )
    b_ours, b_base = min(m.wall for m in ours), min(m.wall for m in base)
    print(f"  ratio (wall): {b_ours / b_base:.2f}x")
    cpu_ours, cpu_base = min(m.cpu for m in ours), min(m.cpu for m in base)
    print(f"  ratio (CPU):  {cpu_ours / cpu_base:.2f}x")


if __name__ == "__main__":
    main()
