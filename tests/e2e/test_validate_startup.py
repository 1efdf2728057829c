"""`batchpay validate` loads only what checking a file needs: its start-up is part of its time.

The command sends nothing, so the HTTP client, the simulator's web stack and the report writer
stay unimported; pandera, which validates every file, is loaded (beside the parse); the XLSX
reader's lxml loads for a workbook only. Checked in a fresh interpreter, as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("aiohttp", "httpx", "openpyxl", "pandera", "lxml", "starlette", "batchpay.sandbox",
         "batchpay.pipeline", "batchpay.client")  # fmt: skip

_PROBE = """
import json, sys
from batchpay.cli import main
try:
    main(["validate", sys.argv[1]], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


def _loaded(sample: str, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "samples" / sample), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"BATCHPAY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert "ok: the file is valid" in done.stdout, done.stdout + done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_validate_of_a_csv_imports_pandera_but_no_client_sandbox_or_report_writer(
    tmp_path: Path,
) -> None:
    """A CSV is checked by pandera, without importing any of the heavy modules a run needs."""
    assert _loaded("payouts.csv", tmp_path) == ["pandera"]


def test_validate_of_a_workbook_adds_only_its_xml_parser(tmp_path: Path) -> None:
    """An XLSX adds lxml, its reader's parser, and nothing else."""
    assert _loaded("payouts.xlsx", tmp_path) == ["lxml", "pandera"]


def test_the_program_ends_at_once_having_written_every_line(tmp_path: Path) -> None:
    """As its own process, `batchpay validate` says everything before it ends: into a file (a
    buffered stream), a valid file's plan to its last line, an invalid one's issues and exit 4."""
    from batchpay.testing import payout_row, write_csv

    env = {"BATCHPAY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    rows = [payout_row(i) for i in range(40)]
    for name, rows_, code, last in (
        ("good.csv", rows, 0, "ok: the file is valid; nothing was sent"),
        ("bad.csv", [*rows[:-1], {**rows[-1], "currency": "XXX"}], 4, "currency"),
    ):
        path = write_csv(tmp_path / name, rows_)
        out = tmp_path / f"{name}.out"
        with out.open("w") as stdout:
            done = subprocess.run(
                [sys.executable, "-m", "batchpay.cli", "validate", str(path)],
                stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, check=False,
            )  # fmt: skip
        assert done.returncode == code, done.stderr
        said = out.read_text() + done.stderr
        assert f"{name}: 40 rows" in said and last in said, said


def test_the_program_collects_cycles_less_often_and_main_alone_does_not() -> None:
    """As the ``batchpay`` program the cyclic collector's first generation waits for 50,000
    allocations (a run's objects are freed by reference counting); ``main`` called by other
    code leaves the interpreter's settings as they were."""
    code = (
        "import gc, sys\n"
        "from batchpay import cli\n"
        "before = gc.get_threshold()\n"
        "sys.argv = ['batchpay', '--version']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert gc.get_threshold() == before, gc.get_threshold()\n"
        "try:\n"
        "    cli.program()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert gc.get_threshold() == cli.PROGRAM_GC_THRESHOLD, gc.get_threshold()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)


def test_the_program_validates_without_loading_hypothesis(tmp_path: Path) -> None:
    """pandera loads hypothesis (installed here, for the tests) for data synthesis when it
    can: the ``batchpay`` program validates without it; ``main`` called by code leaves the
    choice to the caller."""
    code = (  # the program ends with os._exit once it has said everything: asked there
        "import os, sys\n"
        "from batchpay import cli\n"
        "end = os._exit\n"
        "def said(code):\n"
        "    print(sys.modules.get('hypothesis') is not None, flush=True)\n"
        "    end(code)\n"
        "os._exit = said\n"
        "sys.argv = ['batchpay', 'validate', sys.argv[1]]\n"
        "cli.program()\n"
    )
    env = {"BATCHPAY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    sample = str(ROOT / "samples" / "payouts.csv")
    done = subprocess.run([sys.executable, "-c", code, sample], capture_output=True, text=True,
                          env=env, timeout=60, check=True)  # fmt: skip
    assert "ok: the file is valid" in done.stdout, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "False", done.stdout
