"""The benchmark scripts measure the batchpay of the tree they live in (``scripts/_tree.py``),
whichever folder they are run from and whatever the virtualenv's editable install points at:
an A/B of two checkouts must not run one checkout's code in both arms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What a benchmark does: import _tree first, then start children as bench_run starts them.
_PROBE = """
import subprocess, sys
sys.path.insert(0, {scripts!r})
import _tree
import batchpay
print(batchpay.__file__)
child = "import batchpay; print(batchpay.__file__)"
script = {script!r}  # a script started as a child, as bench_run starts its bare loop
for argv in (["-c", child], ["-m", "batchpay.cli", "--version"], [script]):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    print(done.returncode, (done.stdout or done.stderr).strip().splitlines()[-1])
"""


def _plain_env() -> dict[str, str]:
    """This environment without a path of its own: what a shell gives a benchmark."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}


def _decoy(folder: Path) -> None:
    """A batchpay package in the working folder, as another checkout's would be there."""
    (folder / "batchpay").mkdir()
    (folder / "batchpay" / "__init__.py").write_text("raise SystemExit('the decoy batchpay')\n")
    (folder / "batchpay" / "cli.py").write_text("raise SystemExit('the decoy batchpay')\n")


def test_a_script_and_its_children_import_this_trees_batchpay(tmp_path: Path) -> None:
    _decoy(tmp_path)
    env = _plain_env()
    script = tmp_path / "child.py"
    script.write_text("import _tree\nimport batchpay\nprint(batchpay.__file__)\n")
    probe = _PROBE.format(scripts=str(ROOT / "scripts"), script=str(script))
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    own, child_import, child_cli, child_script = done.stdout.strip().splitlines()
    assert Path(own) == ROOT / "batchpay" / "__init__.py"
    assert child_import == f"0 {ROOT / 'batchpay' / '__init__.py'}"
    assert child_cli.startswith("0 ") and "version" in child_cli
    assert child_script == f"0 {ROOT / 'batchpay' / '__init__.py'}"


def test_without_it_the_working_folder_wins(tmp_path: Path) -> None:
    """The trap itself, so the test above could fail: ``python -m`` puts the working
    folder first, and a batchpay there is the one a child runs."""
    _decoy(tmp_path)
    env = _plain_env()
    done = subprocess.run([sys.executable, "-m", "batchpay.cli", "--version"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "the decoy batchpay" in done.stderr


def test_bench_tree_names_another_checkout_for_a_child(tmp_path: Path) -> None:
    """``profile_client --baseline``: its child measures the baseline's batchpay."""
    base = tmp_path / "base"
    (base / "batchpay").mkdir(parents=True)
    (base / "batchpay" / "__init__.py").write_text("")
    script = tmp_path / "child.py"
    script.write_text("import _tree\nimport batchpay\nprint(batchpay.__file__)\n")
    env = _plain_env()
    env.update(PYTHONPATH=str(ROOT / "scripts"), PYTHONSAFEPATH="1", BENCH_TREE=str(base))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert Path(done.stdout.strip()) == base / "batchpay" / "__init__.py"
