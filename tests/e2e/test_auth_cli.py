"""`batchpay auth keygen` and `batchpay auth check` as a user runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from batchpay.auth import DPoPKey
from tests.hostile.spy import clean_env, invoke, no_traceback


def test_keygen_writes_the_pair_and_prints_the_public_jwk(tmp_path: Path) -> None:
    """KEYFILE (0600) and KEYFILE.pub.jwk are written; stdout is the JWK to register."""
    done = invoke(tmp_path, ["auth", "keygen", "dpop.pem"], clean_env(tmp_path))
    assert done.exit_code == 0, done.output
    public = json.loads(done.result.stdout)
    assert public["alg"] == "ES256" and public["crv"] == "P-256" and "d" not in public
    key = tmp_path / "dpop.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert DPoPKey.load(key.read_text()).thumbprint == public["kid"]
    assert json.loads((tmp_path / "dpop.pem.pub.jwk").read_text()) == public
    assert "BATCHPAY_DPOP_KEY_FILE" in done.stderr
    again = invoke(tmp_path, ["auth", "keygen", "dpop.pem", "--alg", "Ed25519"])
    assert again.exit_code == 6 and "already exists" in again.stderr and no_traceback(again.output)
    ed = invoke(tmp_path, ["auth", "keygen", "ed.pem", "--alg", "Ed25519"])
    assert ed.exit_code == 0 and json.loads(ed.result.stdout)["crv"] == "Ed25519"


def test_check_against_the_embedded_sandbox_says_what_it_found(tmp_path: Path) -> None:
    """With nothing configured: the embedded sandbox, its merchant, and no token."""
    done = invoke(tmp_path, ["auth", "check"], clean_env(tmp_path))
    assert done.exit_code == 0, done.output
    assert "environment: embedded:" in done.output
    assert "merchant:    mer_batchpaysandbox" in done.output
    assert "token:       none (API keys do not expire)" in done.output
