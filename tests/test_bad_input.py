"""Bad input to every command gets a typed error: one line on stderr, a JSON error object, exit 1 (2 for usage)."""

import json
import os

import pytest
import pytest_twisted

from tests.test_e2e import register_and_login

LOGGED_IN = [
    # (argv, expected error code)
    (["quote", "NOPE"], "unknown_symbol"),
    (["candles", "NOPE"], "unknown_symbol"),
    (["candles", "AAPL", "--limit", "0"], "invalid_input"),
    (["candles", "AAPL", "--limit", "100000"], "invalid_input"),
    (["buy", "NOPE", "1"], "unknown_symbol"),
    (["buy", "AAPL", "0"], "invalid_input"),
    (["buy", "AAPL", "-1"], "invalid_input"),
    (["buy", "AAPL", "1.0000001"], "invalid_input"),
    (["buy", "AAPL", "ten"], "invalid_input"),
    (["buy", "AAPL", "NaN"], "invalid_input"),
    (["buy", "AAPL", "1e12"], "invalid_input"),
    (["buy", "AAPL", "1000000"], "insufficient_funds"),
    (["sell", "AAPL", "1"], "insufficient_position"),
    (["buy", "AAPL", "1", "--client-order-id", "has\ttab"], "invalid_input"),
    (["buy", "AAPL", "1", "--client-order-id", " surrounded "], "invalid_input"),
    (["buy", "AAPL", "1", "--client-order-id", "x" * 129], "invalid_input"),
    (["orders", "--limit", "0"], "invalid_input"),
    (["history", "--limit", "5000"], "invalid_input"),
]


def check_error(status, out, err, code):
    assert status == 1, (out, err)
    body = json.loads(out)
    assert body["error"] == code
    assert body["message"] and "Traceback" not in err
    assert err.startswith("papertrader: ") and err.count("\n") == 1


@pytest_twisted.ensureDeferred
async def test_bad_input_of_every_trading_command(deployment):
    d = deployment
    await register_and_login(d)
    for argv, code in LOGGED_IN:
        status, out, err = await d.cli(*argv, user="alice")
        check_error(status, out, err, code)
    # Nothing half-written: no order row came from any of the refusals.
    rows = await d.master.db.query("SELECT COUNT(*) FROM orders")
    assert rows[0][0] == 0


@pytest_twisted.ensureDeferred
async def test_bad_account_input(deployment):
    d = deployment
    await register_and_login(d)
    cases = [
        (["register", "ab", "a@example.com", "--password-stdin"], "long enough pass\n", "invalid_input"),
        (["register", "bad name", "a@example.com", "--password-stdin"], "long enough pass\n", "invalid_input"),
        (["register", "x" * 25, "a@example.com", "--password-stdin"], "long enough pass\n", "invalid_input"),
        (["register", "bob", "not-an-email", "--password-stdin"], "long enough pass\n", "invalid_input"),
        (["register", "bob", "bob@example.com", "--password-stdin"], "short\n", "weak_password"),
        (["register", "bob", "bob@example.com", "--password-stdin"], "Password123\n", "weak_password"),
        (["register", "bob", "bob@example.com", "--password-stdin"], "y" * 2000 + "\n", "invalid_input"),
        (["register", "ALICE", "a2@example.com", "--password-stdin"], "long enough pass\n", "username_taken"),
        (["login", "alice", "--password-stdin"], "wrong password\n", "bad_credentials"),
        (["login", "nobody", "--password-stdin"], "wrong password\n", "bad_credentials"),
    ]
    messages = {}
    for argv, stdin, code in cases:
        status, out, err = await d.cli(*argv, stdin=stdin, user="someone")
        check_error(status, out, err, code)
        messages[argv[1]] = json.loads(out)["message"]
    # Wrong user and wrong password read exactly the same.
    assert messages["alice"] == messages["nobody"]


@pytest.mark.parametrize("argv", [["whoami"], ["portfolio"], ["history"], ["orders"], ["buy", "AAPL", "1"],
                                  ["logout"]])
@pytest_twisted.ensureDeferred
async def test_not_logged_in(deployment, argv):
    status, out, err = await deployment.cli(*argv, user="stranger")
    check_error(status, out, err, "not_logged_in")


@pytest_twisted.ensureDeferred
async def test_forged_token_is_not_logged_in(deployment):
    d = deployment
    await register_and_login(d)
    path = os.path.join(d.home, "alice", "papertrader", "session.json")
    session = json.load(open(path))
    session["token"] = session["token"][:-4] + "AAAA"
    json.dump(session, open(path, "w"))
    status, out, err = await d.cli("whoami", user="alice")
    check_error(status, out, err, "not_logged_in")


@pytest_twisted.ensureDeferred
async def test_wrong_ca_is_a_bad_certificate(deployment, tmp_path):
    from papertrader.tls import CertificateAuthority

    other = CertificateAuthority.ensure(str(tmp_path / "other-ca"))
    d = deployment
    status, out, err = await d.cli("--ca-file", str(tmp_path / "other-ca" / "ca.pem"), "workers")
    check_error(status, out, err, "bad_certificate")
    assert other.pem()


@pytest_twisted.ensureDeferred
async def test_no_master_is_unreachable(deployment, tmp_path):
    status, out, err = await deployment.cli("--master", "localhost:1", "workers")
    check_error(status, out, err, "unreachable")


@pytest_twisted.ensureDeferred
async def test_usage_errors_exit_2(deployment):
    d = deployment
    for argv in (["buy", "AAPL"], ["frobnicate"], ["--master", "nonsense:port", "workers"]):
        status, out, err = await d.cli(*argv)
        assert status == 2, argv
        assert json.loads(out)["error"] == "usage"
    status, out, err = await d.cli("--ca-file", str(os.path.join(d.data_dir, "missing.pem")), "workers")
    check_error(status, out, err, "bad_ca_file")
