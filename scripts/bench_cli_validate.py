"""Benchmark: `batchpay validate` as a whole process, beside a plain reader of the same file.

    python scripts/bench_cli_validate.py                    # CSV, 1,000,000 rows
    python scripts/bench_cli_validate.py --rows 200000
    python scripts/bench_cli_validate.py --format xlsx --rows 100000   # needs fastexcel
    python scripts/bench_cli_validate.py --format xlsx --rows 100000 --shape excel

Each measurement is a fresh child process, timed as ``/usr/bin/time`` would: wall clock, CPU
(user + sys of the child, from ``os.wait4``) and its peak RSS. The baseline runs in the same
invocation, on the same file, alternating with batchpay:

* CSV:  ``python -c "import polars; polars.read_csv(FILE)"``
* XLSX: ``python -c "import fastexcel; fastexcel.read_excel(FILE).load_sheet(0).to_polars()"``
  (fastexcel is not a dependency of batchpay: ``pip install -e '.[bench]'`` to measure)

The file is generated once (deterministic, every row valid) by ``bench_validate.generate``;
an XLSX is that CSV written by write-only openpyxl (inline strings), or with ``--shape excel``
as Excel saves a sheet of text cells (shared strings, ``spans``, ``x14ac:dyDescent``, a style);
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

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_validate import generate  # noqa: E402  (the generator lives beside this script)

from batchpay.ingest.canonical import column_letter  # noqa: E402

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


def excel_from_csv(csv_path: Path, xlsx_path: Path) -> None:
    """The CSV's rows as Excel writes a sheet of text cells: shared strings, one style."""
    import zipfile
    from xml.sax.saxutils import escape

    import polars as pl

    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ac = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"
    frame = pl.read_csv(csv_path, infer_schema=False)
    width = len(frame.columns)
    index: dict[str, int] = {}

    rows = []
    for n, values in enumerate([tuple(frame.columns), *frame.iter_rows()], start=1):
        cells = "".join(
            f'<c r="{column_letter(i)}{n}" s="1" t="s"><v>{index.setdefault(v, len(index))}</v></c>'
            for i, v in enumerate(values)
            if v
        )
        rows.append(f'<row r="{n}" spans="1:{width}" x14ac:dyDescent="0.25">{cells}</row>')
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet '
        'name="Payouts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/'
        f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
        f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{rel}/sharedStrings" '
        f'Target="sharedStrings.xml"/><Relationship Id="rId3" Type="{rel}/styles" '
        'Target="styles.xml"/></Relationships>',
        "xl/styles.xml": f'<styleSheet xmlns="{main}"><cellXfs count="2"><xf numFmtId="0"/>'
        '<xf numFmtId="49"/></cellXfs></styleSheet>',
        "xl/worksheets/sheet1.xml": f'{head}<worksheet xmlns="{main}" xmlns:r="{rel}" '
        f'xmlns:x14ac="{ac}"><sheetData>{"".join(rows)}</sheetData></worksheet>',
        "xl/sharedStrings.xml": f'{head}<sst xmlns="{main}" count="{len(index)}" '
        f'uniqueCount="{len(index)}">'
        + "".join(f"<si><t>{escape(text)}</t></si>" for text in index)
        + "</sst>",
    }
    with zipfile.ZipFile(xlsx_path, "w", zipfile.ZIP_DEFLATED) as package:
        for name, text in parts.items():
            package.writestr(name, text)


def main() -> None:
    """Generate the file if needed, then time batchpay and the baseline alternately."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--beneficiaries", type=int, help="distinct payees (default rows / 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best kept)")
    parser.add_argument(
        "--shape",
        choices=["openpyxl", "excel"],
        default="openpyxl",
        help="XLSX as write-only openpyxl writes it (inline strings) or as Excel does",
    )
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.format == "csv" else 100_000)
    payees = args.beneficiaries or max(1, rows // 10)
    csv_path = Path(f"/tmp/batchpay-bench-{rows}-{payees}.csv")
    path = csv_path if args.format == "csv" else csv_path.with_suffix(".xlsx")
    if args.format == "xlsx" and args.shape == "excel":
        path = csv_path.with_suffix(".excel.xlsx")
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        if not csv_path.exists():
            generate(csv_path, rows, beneficiaries=payees)
        if path != csv_path:
            (excel_from_csv if args.shape == "excel" else xlsx_from_csv)(csv_path, path)
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
