"""Sign-in with an OpenID Connect provider, against a real local provider (tests/oidc_provider.py)."""

import json
from dataclasses import replace

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from papertrader import commands
from papertrader.client import cli
from tests.conftest import start_cluster
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, TestProvider


def browser(url):
    """A person's browser: open the sign-in page (approved at once), follow the redirect to the client."""
    async def visit():
        response = await treq.get(url, allow_redirects=False)
        location = response.headers.getRawHeaders(b"location")[0].decode()
        await (await treq.get(location)).content()
    from twisted.internet import defer

    defer.ensureDeferred(visit())


@pytest_twisted.async_yield_fixture
async def signin(tmp_path, settings, database_url, clock, monkeypatch):
    provider = TestProvider()
    issuer = await provider.start(reactor)
    monkeypatch.setattr(cli.CLI, "browser", staticmethod(browser))
    configured = replace(settings, oidc_name="test", oidc_issuer=issuer, oidc_client_id=CLIENT_ID,
                         oidc_client_secret=CLIENT_SECRET)
    d = await start_cluster(tmp_path, configured, database_url, clock)
    d.provider = provider
    yield d
    await d.cluster.stopService()
    await provider.port.stopListening()


def j(text):
    return json.loads(text)


@pytest_twisted.ensureDeferred
async def test_first_sign_in_makes_an_account_without_password_then_a_password_can_be_added(signin):
    d = signin
    status, out, err = await d.cli("login", "--provider", "test", "grace", user="grace")
    assert status == 0, err
    assert j(out)["username"] == "grace"
    status, out, _ = await d.cli("whoami", user="grace")
    assert (j(out)["username"], j(out)["email"]) == ("grace", "grace.hopper@example.com")
    status, out, _ = await d.cli("sessions", user="grace")
    assert [s["device"] for s in j(out)] == [cli.DEVICE]  # said at the provider's finish, kept for the new account
    [(hashed,)] = await d.master.db.query("SELECT password_hash FROM accounts WHERE username = 'grace'")
    assert hashed is None
    # No password yet: a password login is refused like any wrong password.
    status, out, _ = await d.cli("login", "grace", "--password-stdin", stdin="anything at all\n", user="grace")
    assert j(out)["error"] == "bad_credentials"
    # The provider session is still the one saved? It was replaced by nothing: sign in again, no username needed.
    status, out, err = await d.cli("login", "--provider", "test", user="grace")
    assert status == 0 and j(out)["username"] == "grace", err
    status, out, err = await d.cli("set-password", "--password-stdin", stdin="compiler pioneer 1952\n", user="grace")
    assert status == 0, err
    status, out, _ = await d.cli("set-password", "--password-stdin", stdin="another one 1953\n", user="grace")
    assert j(out)["error"] == "invalid_input"  # has one now: that is what passwd is for
    status, out, err = await d.cli("login", "grace", "--password-stdin", stdin="compiler pioneer 1952\n",
                                   user="grace")
    assert status == 0, err
    status, out, err = await d.cli("login", "--provider", "test", user="grace")
    assert status == 0 and j(out)["username"] == "grace", err  # both ways work


@pytest_twisted.ensureDeferred
async def test_linking_to_an_existing_account_needs_its_password(signin):
    d = signin
    await d.cli("register", "ada", "ada@example.com", "--password-stdin", stdin="analytical engine 1843\n")
    status, out, _ = await d.cli("login", "--provider", "test", "ada", "--link", "--password-stdin",
                                 stdin="wrong password!\n", user="ada")
    assert j(out)["error"] == "bad_credentials"
    status, out, err = await d.cli("login", "--provider", "test", "ada", "--link", "--password-stdin",
                                   stdin="analytical engine 1843\n", user="ada")
    assert status == 0 and j(out)["username"] == "ada", err
    status, out, err = await d.cli("login", "--provider", "test", user="ada")
    assert j(out)["username"] == "ada"


@pytest.mark.parametrize("knob, words", [
    ("audience", "another application"),
    ("expired", "expired"),
    ("sign_with_other_key", "not valid"),
    ("replay_nonce", "nonce"),
])
@pytest_twisted.ensureDeferred
async def test_a_bad_id_token_is_refused(signin, knob, words):
    d = signin
    if knob == "replay_nonce":  # a first, genuine sign-in whose nonce the attacker replays
        status, _, err = await d.cli("login", "--provider", "test", "first", user="first")
        assert status == 0, err
    setattr(d.provider, knob, "someone-else" if knob == "audience" else True)
    status, out, err = await d.cli("login", "--provider", "test", "mallory", user="mallory")
    assert status == 1
    assert j(out)["error"] == "provider_login_failed"
    assert words in j(out)["message"]
    rows = await d.master.db.query("SELECT COUNT(*) FROM accounts WHERE username = 'mallory'")
    assert rows[0][0] == 0


@pytest_twisted.ensureDeferred
async def test_an_unknown_provider_is_a_typed_error(signin):
    status, out, _ = await signin.cli("login", "--provider", "nope", "x")
    assert j(out)["error"] == "provider_login_failed"


@pytest_twisted.ensureDeferred
async def test_an_account_without_password_is_deleted_with_a_fresh_provider_sign_in(signin):
    d = signin
    status, out, err = await d.cli("login", "--provider", "test", "grace", user="grace")
    assert status == 0, err
    status, out, _ = await d.cli("delete-account", "--yes", "--password-stdin", stdin="guess\n", user="grace")
    assert j(out) == {"error": "bad_credentials", "message": "this account has no password: deleting it needs a"
                      " fresh sign-in with its provider; nothing was deleted"}
    status, out, err = await d.cli("delete-account", "--yes", "--provider", "test", user="grace")
    assert status == 0, err
    assert (await d.master.db.query("SELECT COUNT(*) FROM identities"))[0][0] == 0


@pytest_twisted.ensureDeferred
async def test_a_rotated_provider_key_is_fetched_again(signin):
    d = signin
    status, _, err = await d.cli("login", "--provider", "test", "grace", user="grace")
    assert status == 0, err
    from cryptography.hazmat.primitives.asymmetric import rsa

    d.provider.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    d.provider.kid = "k2"
    status, out, err = await d.cli("login", "--provider", "test", user="grace")
    assert status == 0 and j(out)["username"] == "grace", err


async def approved(d, redirect_uri, subject, email):
    """A sign-in started at the worker (as anyone can) and approved at the provider by ``subject``, its code not
    redeemed: (ProviderStart's answer, the state and code sent back)."""
    from urllib.parse import parse_qs, urlsplit

    worker = d.cluster.workers[0]
    start = await worker.gateway.forward(commands.ProviderStart, dict(provider="test", redirect_uri=redirect_uri),
                                         "127.0.0.1")
    d.provider.subject, d.provider.email, before = subject, email, (d.provider.subject, d.provider.email)
    try:
        response = await treq.get(start["url"], allow_redirects=False)
    finally:
        d.provider.subject, d.provider.email = before
    back = parse_qs(urlsplit(response.headers.getRawHeaders(b"location")[0].decode()).query)
    return start, back["state"][0], back["code"][0]


@pytest_twisted.ensureDeferred
async def test_the_terminal_ignores_a_callback_of_someone_elses_sign_in(signin, monkeypatch):
    """The CLI's loopback listener took the first callback: mallory, who can reach it, sent her own approved
    sign-in's state and code, and the terminal finished it as its own (her identity linked to the victim's
    account, or the victim signed in as her).  Only the state of the sign-in it started is taken."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    from twisted.internet import defer

    d = signin
    seen = []

    def browser_with_mallory(url):
        async def visit():
            callback = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            _, state, code = await approved(d, "http://127.0.0.1:9/callback", "mallory-666", "mallory@example.com")
            sent = await treq.get(f"{callback}?{urlencode(dict(state=state, code=code))}")
            seen.append((sent.code, await sent.text()))
            browser(url)  # then the person's own sign-in
        defer.ensureDeferred(visit())

    monkeypatch.setattr(cli.CLI, "browser", staticmethod(browser_with_mallory))
    status, out, err = await d.cli("login", "--provider", "test", "grace", user="grace")
    assert status == 0 and j(out)["username"] == "grace", err
    assert seen and seen[0][0] == 400 and "not the sign-in the terminal started" in seen[0][1], seen
    assert await d.master.db.query("SELECT subject FROM identities") == [("user-1234",)]


@pytest_twisted.ensureDeferred
async def test_a_state_and_code_seen_in_a_log_finish_nothing_without_the_sign_ins_secret(signin):
    """The website's callback URL (state and code) lands in access logs and histories; anyone reading it could
    finish the sign-in at the master as its owner.  Only the secret ProviderStart gave the one who started it
    finishes it."""
    from papertrader.errors import ProviderLoginFailed

    d = signin
    worker = d.cluster.workers[0]
    start, state, code = await approved(d, "http://127.0.0.1:9/callback", "user-1234", "grace.hopper@example.com")
    for secret in ("", "guessed", start["state"]):
        with pytest.raises(ProviderLoginFailed, match="unknown or has expired"):
            await worker.gateway.forward(commands.ProviderFinish, dict(
                provider="test", state=state, code=code, secret=secret, remember=False), "127.0.0.2")
    answer = await worker.gateway.forward(commands.ProviderFinish, dict(
        provider="test", state=state, code=code, secret=start["secret"], remember=False), "127.0.0.1")
    assert answer.get("ticket")  # (a new identity: the owner chooses a username next)


@pytest_twisted.ensureDeferred
async def test_one_address_cannot_hold_everyones_provider_sign_ins_off(signin):
    """10,000 ProviderStart calls from one address (no account needed) filled the master's table of sign-ins in
    progress: every provider sign-in was refused for ten minutes."""
    from papertrader.errors import ProviderLoginFailed
    from papertrader.master.oidc import FLOWS_PER_ADDRESS

    d = signin
    worker = d.cluster.workers[0]
    start = dict(provider="test", redirect_uri="http://127.0.0.1:9/callback")
    for _ in range(FLOWS_PER_ADDRESS):
        await worker.gateway.forward(commands.ProviderStart, start, "192.0.2.66")
    with pytest.raises(ProviderLoginFailed, match="too many sign-ins in progress from your address"):
        await worker.gateway.forward(commands.ProviderStart, start, "192.0.2.66")
    status, out, err = await d.cli("login", "--provider", "test", "grace", user="grace")  # others sign in
    assert status == 0 and j(out)["username"] == "grace", err
