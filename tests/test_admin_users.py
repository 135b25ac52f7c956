"""``papertrader-admin user``: the operator lists, shows, disables, enables accounts and resets passwords, as a
real process talking to a real master over its admin channel, on SQLite and PostgreSQL."""

import json
import os
import sys
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import reactor

from papertrader.errors import AccountDisabled, BadCredentials, NotLoggedIn, UnknownUser
from papertrader.master.accounts import Accounts
from tests.conftest import WAIT, SeparatedProcess
from tests.http_helpers import in_thread, start_api
from tests.test_admin import ENV, admin, master_dir, one_line  # noqa: F401 (a fixture)
from tests.test_e2e import register_and_login
from tests.test_http_api import alpaca_error

PASSWORD = "correct horse"


async def user(d, *argv, stdin=None, json_output=True):
    """Run ``papertrader-admin --data-dir DIR [--json] user ARGV``; (status, stdout (parsed if JSON), stderr)."""
    proc = SeparatedProcess(stdin if stdin is not None else "")
    argv = [sys.executable, "-m", "papertrader.admin", "--data-dir", d.data_dir] + (
        ["--json"] if json_output else []) + ["user", *argv]
    reactor.spawnProcess(proc, sys.executable, argv, env=ENV)
    status = (await proc.wait_end(WAIT * 2)).exitCode
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in err, err
    return status, (json.loads(out) if json_output and out else out), err


def j(text):
    return json.loads(text)


async def login(d, username, password=PASSWORD, home=None):
    return await d.cli("login", username, "--password-stdin", stdin=password + "\n", user=home or username)


@pytest_twisted.ensureDeferred
async def test_a_disabled_user_is_cut_off_everywhere_and_enabled_comes_back(tmp_path, settings, database_url, clock):
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

    a = await start_api(tmp_path, settings, database_url, clock, api_rate_limit=100_000)
    d = a.d
    try:
        await register_and_login(d, "bob")
        keyed = a.trading()
        assert (await in_thread(keyed.get_account)).status.value == "ACTIVE"
        status, out, err = await login(d, "alice", home="alice-laptop")  # a second session
        assert status == 0, err
        for home in ("alice", "alice-laptop"):  # each worker's cache holds the sessions now
            status, out, _ = await d.cli("whoami", user=home)
            assert status == 0 and j(out)["username"] == "alice"

        status, done, err = await user(d, "disable", "alice", "--reason", "left the course")
        assert status == 0, err
        assert (done["username"], done["already"], done["sessions_ended"], done["api_keys"]) == (
            "alice", False, 2, 1)
        status, out, _ = await user(d, "list", json_output=False)
        assert "yes: left the course" in out  # the list says why, as the README says

        # Every session ended at once: the next command says why.
        for home in ("alice", "alice-laptop"):
            status, out, _ = await d.cli("whoami", user=home)
            assert (status, j(out)["error"]) == (1, "account_disabled"), out
        # A login is refused with the right password (and says why); a wrong one learns nothing.
        status, out, _ = await login(d, "alice")
        assert (status, j(out)["error"]) == (1, "account_disabled")
        assert "disabled by the operator" in j(out)["message"]
        status, out, _ = await login(d, "alice", "not the password")
        assert (status, j(out)["error"]) == (1, "bad_credentials")
        # The API key: 403 as Alpaca answers a forbidden request; a wrong secret is still a 401.
        with pytest.raises(APIError) as excinfo:
            await in_thread(keyed.get_account)
        assert alpaca_error(excinfo)[:2] == (403, 40310000)
        wrong = TradingClient(a.key_id, "x" * 40, paper=True, url_override=a.url)
        with pytest.raises(APIError) as excinfo:
            await in_thread(wrong.get_account)
        assert alpaca_error(excinfo)[:2] == (401, 40110000)
        # Nobody else is touched.
        status, out, _ = await d.cli("whoami", user="bob")
        assert status == 0 and j(out)["username"] == "bob"

        status, listed, _ = await user(d, "list")
        assert status == 0
        rows = {u["username"]: u for u in listed}
        assert rows["alice"]["disabled"] and rows["alice"]["disabled_reason"] == "left the course"
        assert (rows["alice"]["sessions"], rows["alice"]["api_keys"], rows["alice"]["portfolios"]) == (0, 1, 1)
        assert rows["bob"]["disabled"] is None and rows["bob"]["sessions"] == 1
        status, out, _ = await user(d, "show", "alice", json_output=False)
        assert status == 0 and "disabled: since " in out and ": left the course" in out, out

        status, again, _ = await user(d, "disable", "ALICE")
        assert status == 0 and again["already"] and again["disabled"] == done["disabled"]

        status, enabled, err = await user(d, "enable", "alice")
        assert status == 0 and enabled == {"username": "alice", "was_disabled": True}, err
        status, out, err = await login(d, "alice")
        assert status == 0, err
        status, out, _ = await d.cli("whoami", user="alice")
        assert status == 0 and j(out)["username"] == "alice"
        assert (await in_thread(keyed.get_account)).status.value == "ACTIVE"  # the key works again
        status, listed, _ = await user(d, "list", "--search", "ALI")
        assert [(u["username"], u["disabled"], u["disabled_reason"]) for u in listed] == [("alice", None, None)]
        assert listed[0]["last_login"]

        with open(os.path.join(d.data_dir, "logs", "master.log"), encoding="utf-8") as f:
            log = f.read()
        assert "operator disabled account alice (left the course): 2 sessions ended, 1 API key refused" in log
        assert "operator enabled account alice" in log
        assert "login of disabled account alice refused" in log
    finally:
        await d.cluster.stopService()


def files_holding(root, secret):
    """Every file under ``root`` whose bytes hold ``secret``."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    if secret.encode() in f.read():
                        found.append(path)
            except OSError:
                pass
    return found


@pytest_twisted.ensureDeferred
async def test_reset_password_prints_a_new_one_once_and_ends_every_session(deployment, tmp_path):
    d = deployment
    await register_and_login(d, "alice")
    status, out, err = await login(d, "alice", home="alice-laptop")
    assert status == 0, err

    status, done, err = await user(d, "reset-password", "alice")
    assert status == 0, err
    new = done["password"]
    assert done["sessions_ended"] == 2 and len(new) == 19 and new.count("-") == 3
    for home in ("alice", "alice-laptop"):
        status, out, _ = await d.cli("whoami", user=home)
        assert (status, j(out)["error"]) == (1, "not_logged_in")
    status, out, _ = await login(d, "alice")
    assert (status, j(out)["error"]) == (1, "bad_credentials")  # the old password
    status, out, err = await login(d, "alice", new)
    assert status == 0, err

    # Printed once, in words: the password and what to do with it.
    status, out, err = await user(d, "reset-password", "alice", json_output=False)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "password of alice reset; 1 session ended"
    second = lines[1].rsplit(" ", 1)[1]
    assert lines[1].startswith("temporary password (shown only now): ") and second != new
    assert "the website's Account page" in lines[2]  # a student who only has a browser can change it there
    status, out, err = await login(d, "alice", second)
    assert status == 0, err

    # From standard input: registration's rules.
    for weak in ("password", "short"):
        status, out, err = await user(d, "reset-password", "alice", "--password-stdin", stdin=weak + "\n")
        assert (status, out["error"]) == (1, "weak_password"), (out, err)
        assert out["message"] in one_line(err)
    status, out, err = await user(d, "reset-password", "alice", "--password-stdin", stdin="")
    assert (status, out["error"]) == (1, "invalid_input")
    chosen = "a brand new secret"
    status, out, err = await user(d, "reset-password", "alice", "--password-stdin", stdin=chosen + "\n")
    assert status == 0 and out == {"username": "alice", "sessions_ended": 1, "password": None}, err
    status, out, _ = await login(d, "alice", second)
    assert (status, j(out)["error"]) == (1, "bad_credentials")
    status, out, err = await login(d, "alice", chosen)
    assert status == 0, err

    # Logged as the operator's, never with the password: no file of the deployment holds one.
    with open(os.path.join(d.data_dir, "logs", "master.log"), encoding="utf-8") as f:
        log = f.read()
    assert log.count("operator reset the password of alice") == 3
    for secret in (new, second, chosen):
        assert files_holding(str(tmp_path), secret) == []
        assert not [e for e in d.master.logs.newest(None) if secret in e.message]


@pytest_twisted.ensureDeferred
async def test_list_show_and_unknown_users(deployment):
    d = deployment
    status, out, _ = await user(d, "list")
    assert (status, out) == (0, [])
    status, out, _ = await user(d, "list", json_output=False)
    assert (status, out) == (0, "No accounts.\n")
    for name in ("alice", "bob", "carol"):
        await register_and_login(d, name)
    status, out, err = await d.cli("api-key", "create", "--name", "bot", user="carol")
    assert status == 0, err
    key_id = j(out)["key_id"]
    status, out, err = await d.cli("portfolio", "create", "growth", user="carol")
    assert status == 0, err

    status, listed, _ = await user(d, "list")
    assert [u["username"] for u in listed] == ["alice", "bob", "carol"]
    carol = listed[2]
    assert (carol["email"], carol["password"], carol["portfolios"], carol["sessions"], carol["api_keys"]) == (
        "carol@example.com", True, 2, 1, 1)
    assert carol["created"] and carol["last_login"] and carol["disabled"] is None
    status, listed, _ = await user(d, "list", "--search", "B@EXAMPLE")
    assert [u["username"] for u in listed] == ["bob"]
    status, listed, _ = await user(d, "list", "--search", "%")  # no wildcard: a % in no name or email
    assert listed == []
    status, out, _ = await user(d, "list", "--search", "zed", json_output=False)
    assert out == "No account's username or email holds 'zed'.\n"
    status, out, _ = await user(d, "list", json_output=False)
    header, *rows = out.splitlines()
    assert header.split() == ["USERNAME", "EMAIL", "CREATED", "LAST_LOGIN", "DISABLED", "PORTFOLIOS", "SESSIONS",
                              "API_KEYS"]
    assert rows[2].split()[:2] == ["carol", "carol@example.com"] and rows[2].split()[-4:] == ["no", "2", "1", "1"]

    status, shown, _ = await user(d, "show", "Carol")
    assert status == 0
    assert (shown["username"], shown["sign_in"], shown["portfolio_names"], shown["open_orders"]) == (
        "carol", ["password"], ["default", "growth"], 0)
    assert shown["keys"] == [f"{key_id} (bot, portfolio default)"]

    for argv in (("show", "nobody"), ("disable", "nobody"), ("enable", "nobody"), ("reset-password", "nobody")):
        status, out, err = await user(d, *argv)
        assert (status, out["error"]) == (1, "unknown_user"), (argv, out)
        assert out["message"] == "no account named 'nobody'" and out["message"] in one_line(err)
    status, out, err = await user(d, "disable", "bob", "--reason", "x" * 201)
    assert (status, out["error"]) == (1, "invalid_input")
    status, out, _ = await user(d, "enable", "bob", json_output=False)
    assert (status, out) == (0, "bob was not disabled\n")


@pytest_twisted.ensureDeferred
async def test_delete_removes_the_account_as_its_owner_would_after_a_confirmation(deployment):
    d = deployment
    for name in ("alice", "bob"):
        await register_and_login(d, name)
    status, out, err = await d.cli("buy", "AAPL", "1", "--limit", "1.00", "--tif", "gtc", user="alice")
    assert status == 0, err
    order_id = j(out)["id"]

    # Without a terminal it needs --yes; at a terminal, the username typed; else nothing is deleted.
    status, out, err = await user(d, "delete", "alice")
    assert (status, out["error"]) == (2, "usage") and "needs --yes" in out["message"]
    typed = SeparatedProcess("bob\n")
    reactor.spawnProcess(typed, sys.executable, [sys.executable, "-m", "papertrader.admin", "--data-dir",
                                                 d.data_dir, "user", "delete", "alice"], env=ENV, usePTY=True)
    assert (await typed.wait_end(WAIT * 2)).exitCode == 1
    assert b"Type its username to go on: " in typed.output and b"not confirmed; nothing was deleted" in typed.output
    status, out, err = await d.cli("whoami", user="alice")
    assert status == 0, err

    status, done, err = await user(d, "delete", "alice", "--yes")
    assert status == 0, err
    assert done == {"username": "alice", "sessions_ended": 1, "orders_canceled": 1}
    status, out, _ = await d.cli("whoami", user="alice")
    assert (status, j(out)["error"]) == (1, "not_logged_in")
    status, out, _ = await login(d, "alice")
    assert (status, j(out)["error"]) == (1, "bad_credentials")
    [(username, email, hashed)] = await d.master.db.query(
        "SELECT username, email, password_hash FROM accounts WHERE deleted IS NOT NULL")
    assert username.startswith("deleted-") and email == "" and hashed is None
    [(status_, reason_code)] = await d.master.db.query("SELECT status, reason_code FROM orders WHERE id = ?",
                                                       (order_id,))
    assert (status_, reason_code) == ("canceled", "account_deleted")
    status, listed, _ = await user(d, "list")
    assert [u["username"] for u in listed] == ["bob"]
    status, out, _ = await user(d, "delete", "alice", "--yes")
    assert (status, out["error"]) == (1, "unknown_user")  # gone: the name is free again
    status, out, err = await d.cli("register", "alice", "alice@example.com", "--password-stdin",
                                   stdin=PASSWORD + "\n", user="alice")
    assert status == 0, err
    with open(os.path.join(d.data_dir, "logs", "master.log"), encoding="utf-8") as f:
        assert "operator deleted account alice (now deleted-" in f.read()


def test_user_commands_need_a_running_master(master_dir):  # noqa: F811 (the fixture)
    for argv in (["list"], ["show", "alice"], ["disable", "alice"], ["enable", "alice"],
                 ["reset-password", "alice"]):
        status, out, err = admin("--data-dir", master_dir, "user", *argv, "--json")
        assert status == 1, (argv, out, err)
        answer = json.loads(out)
        assert answer["error"] == "master_not_running"
        assert answer["message"].startswith(f"no master is running with the data dir {master_dir}: start it, then"
                                            f" run user {argv[0]}")
        assert answer["message"] in one_line(err) and "Traceback" not in err
    status, out, err = admin("--data-dir", master_dir, "user")
    assert status == 2


@pytest_twisted.ensureDeferred
async def test_a_disabled_account_signs_in_with_its_provider_no_more(db, settings, clock, log):
    accounts = Accounts(db, settings, clock, log)
    identity = SimpleNamespace(issuer="https://id.example.com", subject="s-1", email="carol@example.com")
    ticket = (await accounts.identity_login(identity, False, "w1", "192.0.2.1"))["ticket"]
    token, _, _ = await accounts.create_from_identity(ticket, "carol", "w1", "192.0.2.1")
    await accounts.register("dave", "dave@example.com", PASSWORD)
    dave, _, _ = await accounts.login("dave", PASSWORD, False, "w1", "192.0.2.1")

    done = await accounts.disable("carol", "  spam   bot ")
    assert (done["sessions_ended"], done["already"]) == (1, False)
    with pytest.raises(AccountDisabled):
        await accounts.authenticate(token)
    with pytest.raises(AccountDisabled):
        await accounts.identity_login(identity, False, "w1", "192.0.2.1")
    assert (await accounts.user("carol"))["disabled_reason"] == "spam bot"
    assert (await accounts.authenticate(dave)).username == "dave"

    await accounts.enable("carol")
    assert (await accounts.identity_login(identity, False, "w1", "192.0.2.1"))["username"] == "carol"
    with pytest.raises(NotLoggedIn) as excinfo:  # the ended session stays ended
        await accounts.authenticate(token)
    assert type(excinfo.value) is NotLoggedIn
    with pytest.raises(UnknownUser):
        await accounts.disable("nobody")
    with pytest.raises(BadCredentials):
        await accounts.login("carol", PASSWORD, False, "w1", "192.0.2.1")  # no password: as any wrong one


@pytest_twisted.ensureDeferred
async def test_the_list_comes_a_page_at_a_time(db, settings, clock, log):
    from papertrader.master.accounts import USERS_PAGE

    accounts = Accounts(db, settings, clock, log)
    for n in range(USERS_PAGE + 5):
        await db.execute("INSERT INTO accounts (username, username_key, email, password_hash, cash_cents, created,"
                         " uuid) VALUES (?, ?, ?, NULL, 0, '2026-01-01T00:00:00.000000+00:00', ?)",
                         (f"user_{n:03}", f"user_{n:03}", f"u{n}@example.com", f"uuid-{n}"))
    first = await accounts.users()
    assert len(first["users"]) == USERS_PAGE and first["next"] is not None
    second = await accounts.users(after=first["next"])
    assert [u["username"] for u in second["users"]] == [f"user_{n:03}" for n in range(USERS_PAGE, USERS_PAGE + 5)]
    assert second["next"] is None
    # '_' is a letter here, not LIKE's wildcard.
    assert [u["username"] for u in (await accounts.users("r_10"))["users"]] == [f"user_{n}" for n in range(100, 105)]
    assert (await accounts.users("s_r"))["users"] == []  # as a wildcard it would match every "user"
