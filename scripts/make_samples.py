"""Regenerate the sample payout files in samples/ (deterministic: same bytes every run).

    python scripts/make_samples.py

Writes:
  samples/payouts.csv              a realistic, all-valid payout file (UTF-8, comma separated)
  samples/payouts.xlsx             the same rows as an Excel workbook; bank details, references,
                                   phone numbers and dates are Text cells (leading zeros kept),
                                   amounts are numbers
  samples/bad/invalid.csv          check-digit failures, wrong formats, missing and inconsistent
                                   cells: what `batchpay validate` reports
  samples/bad/excel-damaged.xlsx   what Excel does to a payout sheet: numbers in bank-detail
                                   columns (leading zeros dropped, scientific notation), float
                                   artefacts in amounts, date serials, formulas, a merged cell
                                   and a hidden row
  samples/bad/excel-resaved.csv    a CSV opened and re-saved by Excel: account numbers in
                                   scientific notation, a formula-like reference, a comma amount

Amounts avoid cents .91-.97: the sandbox uses those cents as outcome triggers.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FIXED_TIME = (2026, 1, 5, 9, 0, 0)

HEADER = [
    "Reference",
    "Payee ID",
    "Type",
    "First Name",
    "Last Name",
    "Company Name",
    "Registration Number",
    "Email",
    "Phone",
    "Date of Birth",
    "Nationality",
    "Address Line 1",
    "Address Line 2",
    "City",
    "State",
    "Postal Code",
    "Country",
    "Amount",
    "Currency",
    "Source Currency",
    "Payment Method",
    "IBAN",
    "BIC",
    "Account Number",
    "Routing Number",
    "Account Type",
    "Sort Code",
    "Purpose",
    "Description",
]
# Columns written as Text cells in the workbook (everything but the amount).
NUMERIC_COLUMNS = {"Amount"}


def iban(country: str, bban: str) -> str:
    """An IBAN with correct ISO 7064 check digits for ``bban``."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def spaced(value: str) -> str:
    """The IBAN in its printed form, groups of four (as people paste it)."""
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def individual(
    ref: str, first: str, last: str, dob: str, nationality: str, **rest: str
) -> dict[str, str]:
    """An individual beneficiary's cells."""
    return {
        "Payee ID": ref,
        "Type": "individual",
        "First Name": first,
        "Last Name": last,
        "Date of Birth": dob,
        "Nationality": nationality,
        **rest,
    }


def business(ref: str, name: str, registration: str, **rest: str) -> dict[str, str]:
    """A business beneficiary's cells."""
    return {
        "Payee ID": ref,
        "Type": "business",
        "Company Name": name,
        "Registration Number": registration,
        **rest,
    }


BENEFICIARIES = {
    "anna": individual(
        "CTR-1001", "Anna", "Müller", "1988-05-12", "DE",
        **{"Email": "anna.mueller@example.de", "Phone": "+4915112345678",
           "Address Line 1": "Kastanienallee 12", "City": "Berlin", "Postal Code": "10435",
           "Country": "DE", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("DE", "370400440532013000"), "BIC": "COBADEFFXXX"},
    ),
    "lea": individual(
        "CTR-1002", "Léa", "Dubois", "1991-11-03", "FR",
        **{"Email": "lea.dubois@example.fr", "Phone": "+33612345678",
           "Address Line 1": "18 rue des Martyrs", "Address Line 2": "Bâtiment B",
           "City": "Paris", "Postal Code": "75009", "Country": "FR", "Currency": "EUR",
           "Payment Method": "iban", "IBAN": spaced(iban("FR", "30006000011234567890189"))},
    ),
    "kanaal": business(
        "SUP-2001", "Kanaal Design B.V.", "KVK 68750110",
        **{"Email": "finance@kanaal.example.nl", "Phone": "+31201234567",
           "Address Line 1": "Keizersgracht 221", "City": "Amsterdam",
           "Postal Code": "1016 DV", "Country": "NL", "Currency": "EUR",
           "Payment Method": "iban", "IBAN": iban("NL", "ABNA0417164300"),
           "BIC": "ABNANL2A"},
    ),
    "mateo": individual(
        "CTR-1003", "Mateo", "García López", "1985-02-27", "ES",
        **{"Email": "mateo.garcia@example.es", "Phone": "+34612345678",
           "Address Line 1": "Calle de Alcalá 45", "Address Line 2": "3º izquierda",
           "City": "Madrid", "Postal Code": "28014", "Country": "ES", "Currency": "EUR",
           "Payment Method": "iban", "IBAN": iban("ES", "21000418450200051332")},
    ),
    "nordlicht": business(
        "SUP-2002", "Nordlicht Software GmbH", "HRB 123456",
        **{"Email": "buchhaltung@nordlicht.example.de", "Phone": "+494012345678",
           "Address Line 1": "Speicherstadt, Am Sandtorkai 5", "City": "Hamburg",
           "Postal Code": "20457", "Country": "DE", "Currency": "EUR",
           "Payment Method": "iban", "IBAN": iban("DE", "200400600123456700"),
           "BIC": "COBADEFFXXX"},
    ),
    "oliver": individual(
        "CTR-1004", "Oliver", "Smith", "1979-08-19", "GB",
        **{"Email": "oliver.smith@example.co.uk", "Phone": "+447700900123",
           "Address Line 1": "221 Baker Street", "Address Line 2": "Flat 2",
           "City": "London", "Postal Code": "NW1 6XE", "Country": "GB", "Currency": "GBP",
           "Payment Method": "uk_bank", "Sort Code": "20-00-00",
           "Account Number": "03185427"},
    ),
    "thames": business(
        "SUP-2003", "Thames Digital Ltd", "09876543",
        **{"Email": "accounts@thames.example.co.uk", "Phone": "+441612345678",
           "Address Line 1": "1 Spinningfields Square", "City": "Manchester",
           "Postal Code": "M3 3AP", "Country": "GB", "Currency": "GBP",
           "Payment Method": "uk_bank", "Sort Code": "40-47-84",
           "Account Number": "70872490"},
    ),
    "amelia": individual(
        "CTR-1005", "Amelia", "Jones", "1993-04-02", "GB",
        **{"Email": "amelia.jones@example.co.uk", "Phone": "+447700900456",
           "Address Line 1": "14 Royal Crescent", "City": "Bath", "Postal Code": "BA1 2LR",
           "Country": "GB", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("GB", "NWBK60161331926819"), "BIC": "NWBKGB2L"},
    ),
    "james": individual(
        "CTR-1006", "James", "Johnson", "1983-12-09", "US",
        **{"Email": "james.johnson@example.com", "Phone": "+15125550143",
           "Address Line 1": "500 Congress Avenue", "Address Line 2": "Suite 300",
           "City": "Austin", "State": "TX", "Postal Code": "78701", "Country": "US",
           "Currency": "USD", "Payment Method": "us_bank", "Routing Number": "021000021",
           "Account Number": "000123456789", "Account Type": "checking"},
    ),
    "hudson": business(
        "SUP-2004", "Hudson Works LLC", "5123456",
        **{"Email": "ap@hudsonworks.example.com", "Phone": "+12125550178",
           "Address Line 1": "350 Fifth Avenue", "City": "New York", "State": "NY",
           "Postal Code": "10118", "Country": "US", "Currency": "USD",
           "Payment Method": "us_bank", "Routing Number": "026009593",
           "Account Number": "4830172651", "Account Type": "savings"},
    ),
    "ava": individual(
        "CTR-1007", "Ava", "Williams", "1996-06-30", "US",
        **{"Email": "ava.williams@example.com", "Phone": "+13035550199",
           "Address Line 1": "1600 Champa Street", "City": "Denver", "State": "CO",
           "Postal Code": "80202", "Country": "US", "Currency": "USD",
           "Payment Method": "us_bank", "Routing Number": "121000358",
           "Account Number": "0071946385", "Account Type": "checking"},
    ),
    "giulia": individual(
        "CTR-1008", "Giulia", "Rossi", "1990-09-14", "IT",
        **{"Email": "giulia.rossi@example.it", "Phone": "+393471234567",
           "Address Line 1": "Via Torino 61", "City": "Milano", "Postal Code": "20123",
           "Country": "IT", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("IT", "X0542811101000000123456")},
    ),
    "atelier": business(
        "SUP-2005", "Atelier Bleu SRL", "BE0456789123",
        **{"Email": "compta@atelierbleu.example.be", "Phone": "+3225551234",
           "Address Line 1": "Rue Haute 112", "City": "Bruxelles", "Postal Code": "1000",
           "Country": "BE", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("BE", "539007547034"), "BIC": "GEBABEBB"},
    ),
    "lukas": individual(
        "CTR-1009", "Lukas", "Gruber", "1987-01-23", "AT",
        **{"Email": "lukas.gruber@example.at", "Phone": "+436641234567",
           "Address Line 1": "Mariahilfer Straße 88", "City": "Wien", "Postal Code": "1070",
           "Country": "AT", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("AT", "1904300234573201"), "BIC": "BKAUATWW"},
    ),
    "siobhan": individual(
        "CTR-1010", "Siobhán", "Byrne", "1994-03-17", "IE",
        **{"Email": "siobhan.byrne@example.ie", "Phone": "+353871234567",
           "Address Line 1": "27 Merrion Square", "City": "Dublin", "Postal Code": "D02 X285",
           "Country": "IE", "Currency": "EUR", "Payment Method": "iban",
           "IBAN": iban("IE", "AIBK93115212345678")},
    ),
}  # fmt: skip

# (beneficiary, amount, description, extra cells)
PAYOUTS: list[tuple[str, str, str, dict[str, str]]] = [
    ("anna", "2450.00", "Frontend development, January 2026", {}),
    ("lea", "1875.50", "UX research sprint 3", {}),
    ("kanaal", "6320.00", "Brand identity, milestone 2", {"Purpose": "supplier_payment"}),
    ("mateo", "980.25", "Translation EN-ES, 14,200 words", {}),
    ("nordlicht", "12500.00", "Annual licence renewal", {"Purpose": "supplier_payment"}),
    ("oliver", "1500.00", "Data engineering, January 2026", {}),
    ("thames", "4210.80", "Hosting and support Q1", {"Purpose": "supplier_payment"}),
    ("amelia", "750.00", "Workshop facilitation (Lisbon)", {}),
    ("james", "3200.00", "Backend development, January 2026", {}),
    ("hudson", "8765.43", "Office fit-out, deposit", {"Purpose": "supplier_payment"}),
    ("ava", "640.10", "Illustrations for blog series", {}),
    ("giulia", "1320.00", "QA testing, release 4.2", {}),
    ("atelier", "2999.00", "Photography, spring catalogue", {"Purpose": "supplier_payment"}),
    ("lukas", "1100.00", "Security review", {"Source Currency": "USD"}),
    ("siobhan", "455.60", "Copy editing, newsletter", {}),
    ("anna", "2450.00", "Frontend development, February 2026", {}),
    ("oliver", "1500.00", "Data engineering, February 2026", {}),
    ("james", "3200.00", "Backend development, February 2026", {}),
    ("lea", "1210.00", "Usability tests, round 2", {}),
    ("nordlicht", "1480.00", "Support hours, February", {"Purpose": "supplier_payment"}),
    ("mateo", "612.40", "Translation EN-ES, 8,850 words", {}),
    ("ava", "880.00", "Illustrations, part 2", {}),
    ("thames", "4210.80", "Hosting and support Q2", {"Purpose": "supplier_payment"}),
    ("giulia", "990.00", "QA testing, hotfix 4.2.1", {}),
    ("lukas", "1250.00", "Penetration test report", {}),
    ("kanaal", "2150.75", "Brand identity, milestone 3", {"Purpose": "supplier_payment"}),
    ("hudson", "15000.00", "Office fit-out, final payment", {"Purpose": "supplier_payment"}),
    ("anna", "325.00", "Expenses: conference travel", {"Purpose": "expense_reimbursement"}),
    ("oliver", "210.35", "Expenses: train tickets", {"Purpose": "expense_reimbursement"}),
    ("james", "1980.00", "On-call allowance, Q1", {}),
    ("atelier", "1450.00", "Retouching, 40 images", {"Purpose": "supplier_payment"}),
    ("siobhan", "520.00", "Copy editing, annual report", {}),
    ("amelia", "1200.00", "Workshop facilitation (Porto)", {}),
    ("ava", "415.20", "Icon set", {}),
]


def rows() -> list[dict[str, str]]:
    """The sample payout rows, every cell as text."""
    out = []
    for number, (who, amount, description, extra) in enumerate(PAYOUTS, start=1001):
        cents = int(amount.split(".")[1])
        assert not 91 <= cents <= 97, f"{amount}: cents .91-.97 trigger sandbox outcomes"
        row = dict.fromkeys(HEADER, "")
        row.update(BENEFICIARIES[who])
        row.update(
            {
                "Reference": f"INV-2026-{number}",
                "Amount": amount,
                "Purpose": "contractor_payment",
                "Description": description,
            }
        )
        row.update(extra)
        out.append(row)
    return out


def write_csv(path: Path, header: list[str], data: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def _deterministic_zip(data: bytes, patch: dict[str, str] | None = None) -> bytes:
    """Re-pack an .xlsx with fixed timestamps so regenerating gives identical bytes.

    ``patch`` maps cell references of the first sheet to the exact number text to store.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            payload = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                payload = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                    rb"\g<1>2026-01-05T09:00:00Z",
                    payload,
                )
            if info.filename == "xl/worksheets/sheet1.xml":
                for ref, text in (patch or {}).items():
                    payload, n = re.subn(
                        rb'(<c r="' + ref.encode() + rb'"[^>]*><v>)[^<]*',
                        rb"\g<1>" + text.encode(),
                        payload,
                    )
                    assert n == 1, ref
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, payload)
    return out.getvalue()


def _save(workbook: Workbook, path: Path, patch: dict[str, str] | None = None) -> None:
    workbook.properties.creator = "batchpay samples"
    workbook.properties.created = datetime(*FIXED_TIME)
    workbook.properties.modified = datetime(*FIXED_TIME)
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_deterministic_zip(buffer.getvalue(), patch))


def write_xlsx(path: Path, data: list[dict[str, str]]) -> None:
    """The payout rows as a workbook: Text cells except the amount (a number)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Payouts"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in data:
        sheet.append([Decimal(row[h]) if h in NUMERIC_COLUMNS else row[h] for h in HEADER])
    for column in sheet.iter_cols(min_row=2):
        if column[0].column_letter != _letter("Amount"):
            for cell in column:
                cell.number_format = "@"
        else:
            for cell in column:
                cell.number_format = "#,##0.00"
    _save(workbook, path)


def _letter(header: str) -> str:
    letter: str = get_column_letter(HEADER.index(header) + 1)
    return letter


def write_invalid_csv(path: Path, good: list[dict[str, str]]) -> None:
    """Realistic mistakes, one or two per row, for `batchpay validate` to report."""
    bad = [dict(r) for r in good[:10]]
    bad[0]["IBAN"] = bad[0]["IBAN"][:-1] + "1"  # a typo: check digits fail
    bad[1]["Amount"] = "1875,50"  # decimal comma
    bad[2]["Currency"] = "EURO"
    bad[3]["Date of Birth"] = "27/02/1985"  # not YYYY-MM-DD
    bad[4]["BIC"] = "BNPAFRPPXXX"  # a French BIC for a German IBAN
    bad[5]["Sort Code"] = "20-00"  # truncated
    bad[5]["Account Number"] = "3185427"  # leading zero lost
    bad[6]["Email"] = "accounts@thames"  # no domain
    bad[7]["Phone"] = "07700 900456"  # national format, not E.164
    bad[8]["Routing Number"] = "021000012"  # digits swapped: ABA checksum fails
    bad[8]["Currency"] = "EUR"  # us_bank pays USD
    bad[9]["Company Name"] = ""  # required for a business
    bad[9]["Amount"] = "-8765.43"
    write_csv(path, HEADER, bad)


def write_excel_damaged(path: Path, good: list[dict[str, str]]) -> None:
    """A workbook typed the way Excel encourages: numbers where text belongs."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Payouts"
    sheet.append(HEADER)
    damaged = [dict(r) for r in good[:8]]
    for row in damaged:
        values: list[object] = [row[h] for h in HEADER]
        sheet.append(values)
    col = {h: HEADER.index(h) + 1 for h in HEADER}
    # Row 2: an amount computed by a formula (no typed value).
    sheet.cell(2, col["Amount"]).value = "=2000+450"
    # Row 3: float noise from arithmetic, as Excel stores it (17 significant digits); openpyxl
    # would round the float, so the stored text is patched in after saving (see _patch_values).
    sheet.cell(3, col["Amount"]).value = 1875.5
    # Row 4: a date of birth typed as a date: Excel stores a serial number.
    sheet.cell(4, col["Date of Birth"]).value = date(1985, 2, 27)
    # Row 7: account number typed as a number: the leading zero is gone.
    sheet.cell(7, col["Account Number"]).value = 3185427
    # Row 8: sort code as a number.
    sheet.cell(8, col["Sort Code"]).value = 400000 + 4784
    # Row 5: a 20-digit account reference typed as a number: Excel keeps 15 digits.
    sheet.cell(5, col["Registration Number"]).value = 1.2345678901234567e19
    # Row 6: float noise in the other direction (patched in after saving, like row 3).
    sheet.cell(6, col["Amount"]).value = 12500
    # Row 9: a merged cell across the description of two rows, and a hidden row.
    sheet.merge_cells(
        start_row=8, start_column=col["Description"], end_row=9, end_column=col["Description"]
    )
    sheet.row_dimensions[9].hidden = True
    amount = _letter("Amount")
    _save(
        workbook,
        path,
        patch={f"{amount}3": "1875.5000000000002", f"{amount}6": "12499.999999999998"},
    )


def write_excel_resaved(path: Path, good: list[dict[str, str]]) -> None:
    """What a CSV looks like after a round trip through Excel's General format."""
    resaved = [dict(r) for r in good[5:10]]
    resaved[0]["Account Number"] = "3185427"  # 03185427: the leading zero is gone
    resaved[1]["Sort Code"] = "404784"  # still six digits: this one survived
    resaved[3]["Account Number"] = "1.23457E+11"  # 000123456789 became a number, then this
    resaved[4]["Amount"] = "8,765.43"  # Excel's thousands separator
    resaved[2]["Reference"] = '=HYPERLINK("http://example.com","INV-2026-1008")'
    write_csv(path, HEADER, resaved)


def main() -> None:
    """Write every sample file."""
    data = rows()
    write_csv(SAMPLES / "payouts.csv", HEADER, data)
    write_xlsx(SAMPLES / "payouts.xlsx", data)
    write_invalid_csv(SAMPLES / "bad" / "invalid.csv", data)
    write_excel_damaged(SAMPLES / "bad" / "excel-damaged.xlsx", data)
    write_excel_resaved(SAMPLES / "bad" / "excel-resaved.csv", data)
    print(f"wrote {len(data)} payout rows to {SAMPLES}", file=sys.stderr)


if __name__ == "__main__":
    main()
