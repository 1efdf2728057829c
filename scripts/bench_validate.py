"""Benchmark: ingest + validate a generated 1,000,000-row payout CSV, in process.

Only a part of what a user waits for: ``scripts/bench_cli_validate.py`` times the whole
``batchpay validate`` command (planning, hashing, journal look-ups, start-up) as a process,
and is the figure to quote. This script stays as the generator both use and as a breakdown.

    python scripts/bench_validate.py                 # 1M rows, generated once into /tmp
    python scripts/bench_validate.py --beneficiaries 1000000   # every row a new payee
    python scripts/bench_validate.py --rows 200000 --regen

Each measurement runs in its own fresh subprocess so its peak RSS is clean:

* ``batchpay``     ``ingest.read_file`` + ``validate.validate_frame`` (pandera + cross-field rules)
* ``lower-bound``  the same checks as bare polars expressions in one ``select`` over a frame read
                   by ``pl.read_csv`` (no pandera, no structural CSV checks, no issue mapping)

The generated file is deterministic: every row is valid (real IBAN / ABA / sort code check
digits), several rows share a beneficiary, a few addresses need CSV quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import _tree  # noqa: F401  (first: this tree's batchpay, for the script and its children)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = Path("/tmp/batchpay-bench-{rows}-{beneficiaries}.csv")

HEADER = [
    "Ref",
    "Payee ID",
    "Type",
    "First Name",
    "Last Name",
    "Company",
    "Registration Number",
    "Email",
    "Phone",
    "Date of Birth",
    "Nationality",
    "Address",
    "Address 2",
    "City",
    "State",
    "Postcode",
    "Country",
    "Amount",
    "Currency",
    "Source Currency",
    "Payment Method",
    "Beneficiary IBAN",
    "BIC",
    "Account Number",
    "Routing Number",
    "Account Type",
    "Sort Code",
    "Purpose",
    "Description",
]

FIRST = ["Anna", "Lukas", "Marie", "Jonas", "Léa", "Hugo", "Sofia", "Daan", "Emma", "Noah",
         "Lucía", "Mateo", "Olivia", "James", "Amelia", "Oliver", "Ava", "Liam", "Zoë"]  # fmt: skip
LAST = ["Müller", "Schmidt", "Dubois", "Martin", "de Vries", "Jansen", "García", "López",
        "Smith", "Jones", "Taylor", "Brown", "Johnson", "Williams", "O'Brien", "Nowak"]  # fmt: skip
COMPANY = ["Nordlicht", "Atelier Bleu", "Van Dijk", "Sol y Mar", "Thames Digital",
           "Blue Ridge", "Hudson Works", "Alpenblick", "Kanaal", "Brightside"]  # fmt: skip
SUFFIX = {"DE": "GmbH", "FR": "SARL", "NL": "B.V.", "ES": "S.L.", "GB": "Ltd", "US": "LLC"}
PLACES = {
    "DE": (["Berlin", "Hamburg", "München", "Köln"], "Hauptstraße", 5, "+49151"),
    "FR": (["Paris", "Lyon", "Marseille", "Lille"], "rue de la Paix", 5, "+336"),
    "NL": (["Amsterdam", "Utrecht", "Rotterdam"], "Keizersgracht", 4, "+316"),
    "ES": (["Madrid", "Barcelona", "Valencia"], "Calle Mayor", 5, "+346"),
    "GB": (["London", "Manchester", "Leeds"], "High Street", 0, "+447"),
    "US": (["Austin", "Denver", "Boston"], "Main Street", 5, "+1512"),
}
US_STATES = ["TX", "CO", "MA"]


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _aba(rng: random.Random) -> str:
    d = [rng.randrange(10) for _ in range(8)]
    check = (10 - (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])) % 10) % 10
    return "".join(map(str, d)) + str(check)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _beneficiary(rng: random.Random, i: int) -> dict[str, str]:
    country = rng.choice(["DE", "DE", "FR", "NL", "ES", "GB", "GB", "US", "US"])
    cities, street, zip_len, phone_prefix = PLACES[country]
    business = rng.random() < 0.3
    ben: dict[str, str] = dict.fromkeys(HEADER, "")
    ben["Payee ID"] = f"BEN-{i:06d}"
    ben["Type"] = "business" if business else "individual"
    if business:
        ben["Company"] = f"{rng.choice(COMPANY)} {SUFFIX[country]}"
        ben["Registration Number"] = f"HRB{rng.randrange(10000, 999999)}"
        local = "accounts"
        domain = ben["Company"].split()[0].lower()
    else:
        ben["First Name"] = rng.choice(FIRST)
        ben["Last Name"] = rng.choice(LAST)
        ben["Date of Birth"] = (
            f"{rng.randrange(1950, 2004)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        )
        ben["Nationality"] = country
        local = f"user{i}"
        domain = "example"
    ben["Email"] = f"{local}@{domain}.com"
    ben["Phone"] = phone_prefix + _digits(rng, 15 - len(phone_prefix))
    ben["Address"] = f"{street} {rng.randrange(1, 200)}"
    if rng.random() < 0.1:
        ben["Address 2"] = f"Floor {rng.randrange(1, 9)}, Suite {rng.randrange(1, 40)}"
    ben["City"] = rng.choice(cities)
    if country == "GB":
        ben["Postcode"] = f"SW{rng.randrange(1, 20)} {rng.randrange(1, 9)}AA"
    else:
        ben["Postcode"] = _digits(rng, zip_len)
    ben["Country"] = country
    if country == "US":
        ben["State"] = rng.choice(US_STATES)
        ben["Payment Method"] = "us_bank"
        ben["Currency"] = "USD"
        ben["Routing Number"] = _aba(rng)
        ben["Account Number"] = _digits(rng, rng.randrange(8, 13))
        ben["Account Type"] = rng.choice(["checking", "savings"])
    elif country == "GB" and rng.random() < 0.8:
        ben["Payment Method"] = "uk_bank"
        ben["Currency"] = "GBP"
        ben["Sort Code"] = f"{_digits(rng, 2)}-{_digits(rng, 2)}-{_digits(rng, 2)}"
        ben["Account Number"] = _digits(rng, 8)
    else:
        bban = {
            "DE": lambda: _digits(rng, 18),
            "FR": lambda: _digits(rng, 23),
            "NL": lambda: "ABNA" + _digits(rng, 10),
            "ES": lambda: _digits(rng, 20),
            "GB": lambda: "NWBK" + _digits(rng, 14),
        }[country]()
        ben["Payment Method"] = "iban"
        ben["Currency"] = "GBP" if country == "GB" else "EUR"
        ben["Beneficiary IBAN"] = _iban(country, bban)
    return ben


def generate(path: Path, rows: int, *, beneficiaries: int, seed: int = 20260415) -> None:
    """Write a deterministic, all-valid payout CSV with ``rows`` data rows to ``path``."""
    import polars as pl

    rng = random.Random(seed)
    pool = [_beneficiary(rng, i) for i in range(min(beneficiaries, rows))]
    # Blank cells as nulls so write_csv leaves them empty instead of quoting "".
    bens = pl.DataFrame(
        {h: [b[h] or None for b in pool] for h in HEADER}, schema=dict.fromkeys(HEADER, pl.String)
    )
    # Amounts in cents, avoiding .91-.97 (the sandbox's outcome triggers).
    cents = [rng.randrange(1000, 2_500_000) for _ in range(rows)]
    cents = [c - 10 if 91 <= c % 100 <= 97 else c for c in cents]
    idx = pl.Series("i", [(i * 7919) % len(pool) for i in range(rows)], dtype=pl.Int64)
    cents_text = pl.Series("c", cents).cast(pl.String).str.zfill(3)
    amounts = cents_text.str.head(-2) + "." + cents_text.str.tail(2)
    frame = bens[idx].with_columns(
        pl.format("INV-{}", pl.int_range(1, rows + 1).cast(pl.String).str.zfill(7)).alias("Ref"),
        amounts.alias("Amount"),
        pl.lit("contractor_payment").alias("Purpose"),
        pl.format("Services {}", pl.int_range(1, rows + 1) % 12 + 1).alias("Description"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux's VmHWM belongs to this program image only; ru_maxrss would carry over a parent's
    peak across fork + exec (the parent may just have generated the file).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, path: Path) -> None:
    """Run one measurement in this (fresh) process and print a JSON line."""
    import polars as pl

    from batchpay import ingest, validate
    from batchpay.layout import load_layout

    layout = load_layout()
    layout = replace(
        layout,
        limits=replace(layout.limits, max_file_bytes=2**31, max_rows=2_000_000),
    )
    base = _peak_rss_mb()
    start = time.perf_counter()
    if kind == "batchpay":
        ingested = ingest.read_file(path, layout)
        result = validate.validate_frame(ingested, layout)
        rows, valid, issues = result.rows_checked, result.valid.height, len(result.issues)
    else:
        frame = pl.read_csv(path.read_bytes(), infer_schema=False, empty_string_is_null=False)
        frame = frame.rename({h: layout.match_header(h) or h for h in frame.columns})
        frame = frame.with_columns(
            [pl.lit("", dtype=pl.String).alias(c) for c in layout.names if c not in frame.columns]
        )
        ok = validate.lower_bound(frame, layout)
        failed = ok.select(pl.any_horizontal(pl.all().not_()).sum()).item()
        rows, valid, issues = frame.height, frame.height - failed, failed
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "kind": kind,
                "wall_s": round(wall, 3),
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "rss_after_imports_mb": round(base, 1),
                "rows": rows,
                "valid": valid,
                "issues": issues,
            }
        )
    )


def main() -> None:
    """Generate the file if needed, then time batchpay and the polars lower bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--beneficiaries",
        type=int,
        default=100_000,
        help="distinct beneficiaries the rows pay (each pays about rows/beneficiaries times)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--regen", action="store_true", help="regenerate the CSV")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--child", choices=["batchpay", "lower-bound"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.out or Path(
        str(DEFAULT_OUT).format(rows=args.rows, beneficiaries=args.beneficiaries)
    )
    if args.child:
        _child(args.child, path)
        return
    if args.regen or not path.exists():
        t0 = time.perf_counter()
        generate(path, args.rows, beneficiaries=args.beneficiaries)
        print(f"generated {path} in {time.perf_counter() - t0:.1f}s")
    print(
        f"file: {path} ({os.path.getsize(path) / 1e6:.0f} MB, {args.rows:,} rows, "
        f"{min(args.beneficiaries, args.rows):,} beneficiaries)"
    )
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    for kind in ("lower-bound", "batchpay"):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--out", str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["wall_s"])
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
        print(
            f"{kind:12s} wall {best['wall_s']:.2f}s (runs: {walls})  "
            f"peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB "
            f"(after imports {best['rss_after_imports_mb']:.0f} MB)  "
            f"rows {best['rows']:,} valid {best['valid']:,} issues {best['issues']:,}"
        )


if __name__ == "__main__":
    main()
