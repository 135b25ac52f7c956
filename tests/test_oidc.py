"""Sign-in with an OpenID Connect provider, against a real local provider (tests/oidc_provider.py)."""

import json
from dataclasses import replace

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

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
    assert j(out)["error"] == "bad_credentials"
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
