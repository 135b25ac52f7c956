"""Accounts and sessions on both databases: registration, bcrypt passwords, session tokens, expiry, logout."""

import hashlib
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import defer

from papertrader.errors import BadCredentials, InvalidInput, NotLoggedIn, UsernameTaken, WeakPassword
from papertrader.master.accounts import Accounts
from papertrader.money import from_cents
from papertrader.times import utc

PASSWORD = "correct horse battery"
DAY = 24 * 3600


@pytest.fixture
def accounts(db, settings, clock, log):
    return Accounts(db, settings, clock, log)


async def login(accounts, username="alice", password=PASSWORD, remember=False):
    return await accounts.login(username, password, remember, "worker1", "192.0.2.7")


async def count(db, table):
    return (await db.query(f"SELECT COUNT(*) FROM {table}"))[0][0]


@pytest_twisted.ensureDeferred
async def test_register_creates_an_account_with_the_starting_cash(db, settings, clock, log):
    settings = replace(settings, starting_cash=Decimal("2500.50"))
    accounts = Accounts(db, settings, clock, log)
    account = await accounts.register("Alice", " alice@example.com ", PASSWORD)
    assert (account.username, account.email, account.cash) == ("Alice", "alice@example.com", Decimal("2500.50"))
    assert account.created == utc(clock.seconds())
    stored = await accounts.account(account.id)
    assert stored == account
    rows = await db.query("SELECT p.cash_cents, a.password_hash FROM accounts a JOIN portfolios p ON p.account_id = a.id"
                          " WHERE a.id = ? AND p.is_default = 1", (account.id,))
    cash_cents, password_hash = rows[0]
    assert from_cents(cash_cents) == Decimal("2500.50")
    assert password_hash.startswith("$2") and PASSWORD not in password_hash


@pytest_twisted.ensureDeferred
async def test_default_starting_cash(accounts, settings):
    account = await accounts.register("alice", "alice@example.com", PASSWORD)
    assert (await accounts.account(account.id)).cash == settings.starting_cash == Decimal("100000.00")


@pytest.mark.parametrize(
    "username, email, password",
    [
        ("al", "alice@example.com", PASSWORD),
        ("alice smith", "alice@example.com", PASSWORD),
        ("alice", "not-an-email", PASSWORD),
        ("alice", "alice@example.com", "short"),
        ("alice", "alice@example.com", "password123"),
        ("alice", "alice@example.com", "x" * 1025),
        ("alice", "alice@example.com", "tab\there ok?"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_registration_is_refused_and_writes_nothing(accounts, db, username, email, password):
    with pytest.raises((InvalidInput, WeakPassword)):
        await accounts.register(username, email, password)
    assert await count(db, "accounts") == 0


@pytest_twisted.ensureDeferred
async def test_username_is_unique_ignoring_case(accounts, db):
    await accounts.register("Alice", "alice@example.com", PASSWORD)
    for name in ("Alice", "alice", "ALICE"):
        with pytest.raises(UsernameTaken) as excinfo:
            await accounts.register(name, "other@example.com", "another password")
        assert name in excinfo.value.message and "already taken" in excinfo.value.message
    assert await count(db, "accounts") == 1
    # The first owner still logs in with their password.
    token, name, _ = await login(accounts, "alice")
    assert name == "Alice"


@pytest_twisted.ensureDeferred
async def test_a_username_that_looks_like_anothers_is_refused(accounts, db):
    """A game's leaderboard shows usernames only: 'aIice' (a capital I) beside 'alice' passes for her."""
    await accounts.register("alice", "alice@example.com", PASSWORD)
    await accounts.register("bob", "bob@example.com", PASSWORD)
    for name, like in (("aIice", "alice"), ("a1ice", "alice"), ("b0b", "bob"), ("B0B", "bob")):
        with pytest.raises(UsernameTaken) as excinfo:
            await accounts.register(name, f"{name}@example.com", PASSWORD)
        assert f"{name!r} looks too much like {like!r}" in excinfo.value.message
    assert await count(db, "accounts") == 2
    await accounts.register("alicia", "alicia@example.com", PASSWORD)  # different enough
    # A deleted account's name is free again, look-alikes too.
    token, _, _ = await login(accounts, "bob")
    session = await accounts.authenticate(token)
    await accounts.delete(session, PASSWORD)
    await accounts.register("b0b", "b0b@example.com", PASSWORD)


@pytest_twisted.ensureDeferred
async def test_a_provider_sign_up_proposes_no_look_alike_and_a_refused_one_may_pick_again(accounts, db):
    from types import SimpleNamespace

    await accounts.register("b0b", "b0b@example.com", PASSWORD)
    identity = SimpleNamespace(issuer="https://id.example.com", subject="s-1", email="bob@example.com")
    first = await accounts.identity_login(identity, False, "w1", "192.0.2.1")
    assert first["proposal"] == "bob1"  # not 'bob', which looks like 'b0b'
    with pytest.raises(UsernameTaken, match="looks too much like 'b0b'"):
        await accounts.create_from_identity(first["ticket"], "bob", "w1", "192.0.2.1")
    token, name, _ = await accounts.create_from_identity(first["ticket"], "robert", "w1", "192.0.2.1")  # same ticket
    assert name == "robert" and (await accounts.authenticate(token)).username == "robert"


@pytest_twisted.ensureDeferred
async def test_concurrent_registrations_of_one_name_make_one_account(accounts, db):
    results = await defer.DeferredList(
        [accounts.register(name, f"{name}@example.com", PASSWORD) for name in ("bob", "Bob", "BOB")],
        consumeErrors=True,
    )
    ok = [r for success, r in results if success]
    refused = [r for success, r in results if not success]
    assert len(ok) == 1
    assert [f.type for f in refused] == [UsernameTaken, UsernameTaken]
    assert await count(db, "accounts") == 1


@pytest_twisted.ensureDeferred
async def test_login_then_authenticate(accounts, clock):
    account = await accounts.register("Alice", "alice@example.com", PASSWORD)
    token, name, expires = await login(accounts, "aLiCe")  # any case logs in
    assert name == "Alice"  # shown as registered
    assert expires == utc(clock.seconds()) + timedelta(hours=24)
    session = await accounts.authenticate(token)
    assert (session.account_id, session.username, session.expires) == (account.id, "Alice", expires)


@pytest_twisted.ensureDeferred
async def test_each_login_gets_its_own_token(accounts):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    tokens = {(await login(accounts))[0] for _ in range(3)}
    assert len(tokens) == 3
    assert all(len(t) >= 43 for t in tokens)  # 256 random bits


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_unknown_user_are_the_same_error(accounts, db):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    with pytest.raises(BadCredentials) as wrong_password:
        await login(accounts, "alice", PASSWORD + "!")
    with pytest.raises(BadCredentials) as unknown_user:
        await login(accounts, "mallory", PASSWORD)
    assert wrong_password.value.code == unknown_user.value.code == "bad_credentials"
    assert wrong_password.value.message == unknown_user.value.message == "Wrong username or password."
    for username, password in (("", PASSWORD), ("al", PASSWORD), ("alice", ""), ("alice", "x" * 1025),
                               ("a" * 65, PASSWORD)):
        with pytest.raises(BadCredentials):
            await login(accounts, username, password)
    assert await count(db, "sessions") == 0


@pytest_twisted.ensureDeferred
async def test_failed_login_is_logged(accounts, logs):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    with pytest.raises(BadCredentials):
        await login(accounts, "alice", "wrong password")
    [entry] = logs.newest(5, "warn")
    assert entry.message == "failed login for 'alice' from 192.0.2.7 via worker1"
    assert "wrong password" not in entry.message


@pytest_twisted.ensureDeferred
async def test_the_raw_token_is_never_stored(accounts, db, logs):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    token, _, _ = await login(accounts)
    rows = await db.query("SELECT token_hash, account_id, created, expires, worker, client_ip FROM sessions")
    [row] = rows
    assert row[0] == hashlib.sha256(token.encode("ascii")).hexdigest()
    assert (row[4], row[5]) == ("worker1", "192.0.2.7")
    stored = []
    for table in ("accounts", "sessions"):
        stored += [str(v) for r in await db.query(f"SELECT * FROM {table}") for v in r]
    assert not [v for v in stored if token in v]
    assert not [e for e in logs.newest(1000) if token in e.message]  # nor logged


@pytest_twisted.ensureDeferred
async def test_sessions_survive_a_restart(accounts, db, settings, clock, log):
    account = await accounts.register("alice", "alice@example.com", PASSWORD)
    token, _, _ = await login(accounts)
    restarted = Accounts(db, settings, clock, log)  # nothing in memory
    session = await restarted.authenticate(token)
    assert session.account_id == account.id


@pytest.mark.parametrize("remember, ttl", [(False, DAY), (True, 30 * DAY)])
@pytest_twisted.ensureDeferred
async def test_session_expires(db, settings, clock, log, remember, ttl):
    settings = replace(settings, session_idle_timeout=365 * DAY)  # only the expiry at work here
    accounts = Accounts(db, settings, clock, log)
    await accounts.register("alice", "alice@example.com", PASSWORD)
    token, _, expires = await login(accounts, remember=remember)
    assert expires == utc(clock.seconds() + ttl)
    clock.advance(ttl - 1)
    await accounts.authenticate(token)
    assert await Accounts(db, settings, clock, log).authenticate(token)
    clock.advance(1)
    with pytest.raises(NotLoggedIn, match="expired"):
        await accounts.authenticate(token)
    with pytest.raises(NotLoggedIn):  # also when read from the database
        await Accounts(db, settings, clock, log).authenticate(token)


@pytest_twisted.ensureDeferred
async def test_unknown_or_malformed_tokens_are_not_logged_in(accounts):
    for token in ("A" * 43, "", "not a token", None):
        with pytest.raises(NotLoggedIn):
            await accounts.authenticate(token)


@pytest_twisted.ensureDeferred
async def test_logout_ends_the_session_at_once_and_tells_listeners(accounts, db, settings, clock, log):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    token, _, _ = await login(accounts)
    other, _, _ = await login(accounts)
    await accounts.authenticate(token)  # cached in memory
    ended = []
    accounts.on_session_ended += [ended.append, lambda h: ended.append(("second", h))]
    await accounts.logout(token)
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    assert ended == [digest, ("second", digest)]
    with pytest.raises(NotLoggedIn):
        await accounts.authenticate(token)
    with pytest.raises(NotLoggedIn):
        await Accounts(db, settings, clock, log).authenticate(token)
    assert (await db.query("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", (digest,)))[0][0] == 0
    # Only that session ended.
    assert (await accounts.authenticate(other)).username == "alice"
    # Logging out twice is an error, and nobody is told again.
    with pytest.raises(NotLoggedIn):
        await accounts.logout(token)
    assert len(ended) == 2


@pytest_twisted.ensureDeferred
async def test_long_passwords_keep_every_byte(accounts):
    prefix = "p" * 72
    await accounts.register("alice", "alice@example.com", prefix + "-first")
    token, _, _ = await login(accounts, password=prefix + "-first")
    assert token
    # bcrypt alone would read only the first 72 bytes and accept this one.
    with pytest.raises(BadCredentials):
        await login(accounts, password=prefix + "-other")
    with pytest.raises(BadCredentials):
        await login(accounts, password=prefix)


@pytest_twisted.ensureDeferred
async def test_long_non_ascii_passwords_differ_after_byte_72(accounts):
    prefix = "é" * 36  # 72 bytes in UTF-8
    await accounts.register("alice", "alice@example.com", prefix + "x")
    await login(accounts, password=prefix + "x")
    with pytest.raises(BadCredentials):
        await login(accounts, password=prefix + "y")


@pytest_twisted.ensureDeferred
async def test_longest_allowed_password_works(accounts):
    password = "Zq9" * 341 + "!"  # 1024 characters
    await accounts.register("alice", "alice@example.com", password)
    await login(accounts, password=password)
    with pytest.raises(BadCredentials):
        await login(accounts, password=password[:-1] + "?")


@pytest_twisted.ensureDeferred
async def test_changing_the_password_ends_the_other_sessions(accounts, db):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    here, _, _ = await login(accounts)
    elsewhere, _, _ = await login(accounts)
    ended = []
    accounts.on_session_ended.append(ended.append)
    session = await accounts.authenticate(here)
    with pytest.raises(BadCredentials):
        await accounts.change_password(session, "not the password", "a brand new passphrase")
    with pytest.raises(WeakPassword):
        await accounts.change_password(session, PASSWORD, "qwerty123")
    assert await accounts.change_password(session, PASSWORD, "a brand new passphrase") == 1
    assert ended == [hashlib.sha256(elsewhere.encode()).hexdigest()]
    with pytest.raises(NotLoggedIn):
        await accounts.authenticate(elsewhere)
    assert (await accounts.authenticate(here)).username == "alice"  # this session goes on
    with pytest.raises(BadCredentials):
        await login(accounts, password=PASSWORD)
    await login(accounts, password="a brand new passphrase")


@pytest_twisted.ensureDeferred
async def test_a_raised_bcrypt_cost_upgrades_the_hash_at_login(db, settings, clock, log):
    cheap = Accounts(db, replace(settings, bcrypt_rounds=4), clock, log)
    await cheap.register("alice", "alice@example.com", PASSWORD)
    dearer = Accounts(db, replace(settings, bcrypt_rounds=5), clock, log)
    await dearer.login("alice", PASSWORD, False, "worker1", "192.0.2.7")
    [(hashed,)] = await db.query("SELECT password_hash FROM accounts")
    assert hashed.startswith("$2b$05$")
    await dearer.login("alice", PASSWORD, False, "worker1", "192.0.2.7")  # and it still works


@pytest_twisted.ensureDeferred
async def test_passwords_are_compared_after_unicode_normalization(accounts):
    await accounts.register("alice", "alice@example.com", "ﬁne café passphrase")  # 'ﬁ' ligature, composed é
    await login(accounts, password="fine cafe\u0301 passphrase")  # plain 'fi', decomposed é


@pytest_twisted.ensureDeferred
async def test_an_idle_session_ends_and_use_keeps_it_alive(db, settings, clock, log):
    accounts = Accounts(db, replace(settings, session_idle_timeout=3600), clock, log)
    await accounts.register("alice", "alice@example.com", PASSWORD)
    busy, _, _ = await login(accounts, remember=True)
    idle, _, _ = await login(accounts, remember=True)
    for _ in range(5):  # five hours of use, an hour apart minus a minute
        clock.advance(3540)
        await accounts.authenticate(busy)
    with pytest.raises(NotLoggedIn, match="unused"):
        await accounts.authenticate(idle)
    # A restart reads the last use from the database (written at most once a minute).
    assert (await Accounts(db, replace(settings, session_idle_timeout=3600), clock, log).authenticate(busy))


@pytest_twisted.ensureDeferred
async def test_checking_a_session_for_an_open_page_is_not_its_use(db, settings, clock, log):
    accounts = Accounts(db, replace(settings, session_idle_timeout=3600), clock, log)
    await accounts.register("alice", "alice@example.com", PASSWORD)
    token, _, _ = await login(accounts)
    for _ in range(59):  # an hour of checks, a minute apart: live, but not used
        clock.advance(60)
        assert (await accounts.authenticate(token, use=False)).username == "alice"
    clock.advance(61)
    with pytest.raises(NotLoggedIn, match="unused"):
        await accounts.authenticate(token, use=False)


@pytest_twisted.ensureDeferred
async def test_sessions_are_listed_and_ended_one_by_one_or_all(accounts, db, clock):
    await accounts.register("alice", "alice@example.com", PASSWORD)
    phone, _, _ = await accounts.login("alice", PASSWORD, False, "worker1", "198.51.100.1")
    laptop, _, _ = await accounts.login("alice", PASSWORD, True, "worker2", "198.51.100.2")
    here = await accounts.authenticate(laptop)
    listed = await accounts.sessions(here)
    assert [(s["worker"], s["client_ip"], s["current"]) for s in listed] == [
        ("worker1", "198.51.100.1", False), ("worker2", "198.51.100.2", True)]
    assert all(len(s["id"]) == 12 for s in listed)
    rows = await db.query("SELECT public_id FROM sessions")
    assert laptop not in str(rows) and phone not in str(rows)  # the ids are not the tokens
    await accounts.end_session(here, listed[0]["id"])
    with pytest.raises(NotLoggedIn):
        await accounts.authenticate(phone)
    with pytest.raises(InvalidInput):
        await accounts.end_session(here, "nonexistent1")
    other, _, _ = await login(accounts)
    assert await accounts.logout_all(here) == 2
    for token in (laptop, other):
        with pytest.raises(NotLoggedIn):
            await accounts.authenticate(token)
