"""Abuse limits: exponential delays after repeated failed logins, a ceiling per window, registrations per address."""

import json
from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import task

from papertrader.errors import BadCredentials, Throttled
from papertrader.master.accounts import Accounts
from papertrader.throttle import Throttle
from tests.conftest import start_cluster

PASSWORD = "correct horse battery"


def test_delays_double_after_the_free_failures():
    clock = task.Clock()
    t = Throttle(clock, free=3, ceiling=100, window=900, cap=60)
    for _ in range(3):
        t.check("k")
        t.failed("k")
    assert t.wait("k") == 1.0
    with pytest.raises(Throttled, match="try again in 1 second$"):
        t.check("k")
    clock.advance(1)
    t.check("k")
    t.failed("k")
    assert t.wait("k") == 2.0
    clock.advance(2)
    t.check("k")
    t.failed("k")
    assert t.wait("k") == 4.0
    for _ in range(10):  # capped
        clock.advance(t.wait("k"))
        t.check("k")
        t.failed("k")
    assert t.wait("k") == 60.0
    t.succeeded("k")
    assert t.wait("k") == 0.0
    assert t.wait("other") == 0.0  # keys are separate


def test_ceiling_per_window_and_forgetting():
    clock = task.Clock()
    t = Throttle(clock, free=100, ceiling=3, window=10)
    for _ in range(3):
        t.check("k")
    with pytest.raises(Throttled):
        t.check("k")
    clock.advance(10)  # the window has moved on
    t.check("k")
    small = Throttle(clock, free=1, ceiling=5, window=10, size=2)
    for key in ("a", "b", "c"):
        small.failed(key)
    assert small.wait("a") == 0.0 and len(small._failures) == 2  # bounded memory: the oldest went


@pytest_twisted.ensureDeferred
async def test_login_is_throttled_per_name_and_per_address_alike(db, settings, clock, log):
    """A name guessed from one address is held off there, not for its owner elsewhere (one address kept an
    account locked with a guess every few minutes: security review); guessed from many addresses, ten times
    one address's room, it is held off everywhere."""
    from papertrader.master.accounts import NAME_FACTOR

    limited = replace(settings, login_free_attempts=3, login_ceiling=100, throttle_window=900)
    accounts = Accounts(db, limited, clock, log)
    await accounts.register("alice", "alice@example.com", PASSWORD)
    for name, address in (("alice", "198.51.100.7"), ("nobody", "198.51.100.8")):  # (known or not: the same)
        for n in range(3):
            with pytest.raises(BadCredentials):
                await accounts.login(name, "wrong guess!", False, "w1", address)
        with pytest.raises(Throttled):
            await accounts.login(name, PASSWORD, False, "w1", address)
    token, _, _ = await accounts.login("alice", PASSWORD, False, "w1", "198.51.100.99")  # its owner, elsewhere
    assert token
    for n in range(NAME_FACTOR * 3):  # one guess from each of many addresses
        with pytest.raises(BadCredentials):
            await accounts.login("zed", "wrong guess!", False, "w1", f"192.0.2.{n}")
    with pytest.raises(Throttled):
        await accounts.login("zed", "wrong guess!", False, "w1", "192.0.2.250")
    # Per address: one address guessing many names.
    for n in range(3):
        with pytest.raises(BadCredentials):
            await accounts.login(f"user{n}", "wrong guess!", False, "w1", "203.0.113.5")
    with pytest.raises(Throttled):
        await accounts.login("carol", "wrong guess!", False, "w1", "203.0.113.5")
    clock.advance(1)
    token, _, _ = await accounts.login("alice", PASSWORD, False, "w1", "198.51.100.200")
    assert token  # after the delay the right password works, and resets the name's count


@pytest_twisted.ensureDeferred
async def test_an_operators_password_reset_lets_a_locked_out_user_sign_in_again(db, settings, clock, log):
    """After the limits were counted per address, a reset forgot a key no sign-in used any more: a user locked out
    by guesses (from many addresses, or their own) stayed locked out with the new password (found by review)."""
    from papertrader.master.accounts import NAME_FACTOR

    accounts = Accounts(db, replace(settings, login_free_attempts=3, login_ceiling=100), clock, log)
    await accounts.register("carol", "carol@example.com", PASSWORD)
    for n in range(NAME_FACTOR * 3):
        with pytest.raises(BadCredentials):
            await accounts.login("carol", "wrong guess!", False, "w1", f"192.0.2.{n}")
    for _ in range(3):
        with pytest.raises((BadCredentials, Throttled)):
            await accounts.login("carol", "wrong guess!", False, "w1", "198.51.100.1")
    with pytest.raises(Throttled):
        await accounts.login("carol", PASSWORD, False, "w1", "198.51.100.1")
    await accounts.reset_password("carol", "a brand new password 42")
    for address in ("198.51.100.1", "198.51.100.200"):
        token, _, _ = await accounts.login("carol", "a brand new password 42", False, "w1", address)
        assert token


@pytest_twisted.ensureDeferred
async def test_registration_is_limited_per_address(db, settings, clock, log):
    accounts = Accounts(db, replace(settings, registrations_per_address=2), clock, log)
    await accounts.register("user1", "u1@example.com", PASSWORD, "192.0.2.1")
    await accounts.register("user2", "u2@example.com", PASSWORD, "192.0.2.1")
    with pytest.raises(Throttled):
        await accounts.register("user3", "u3@example.com", PASSWORD, "192.0.2.1")
    await accounts.register("user3", "u3@example.com", PASSWORD, "192.0.2.2")


@pytest_twisted.ensureDeferred
async def test_the_client_sees_throttled(tmp_path, settings, database_url, clock):
    limited = replace(settings, login_free_attempts=2, login_ceiling=100, registrations_per_address=100)
    d = await start_cluster(tmp_path, limited, database_url, clock)
    try:
        await d.cli("register", "alice", "a@example.com", "--password-stdin", stdin=PASSWORD + "\n")
        for _ in range(2):
            status, out, _ = await d.cli("login", "alice", "--password-stdin", stdin="wrong guess!\n")
            assert json.loads(out)["error"] == "bad_credentials"
        status, out, err = await d.cli("login", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        assert status == 1 and json.loads(out)["error"] == "throttled"
        assert "try again in" in err
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_only_registrations_that_cost_something_count_against_the_address(db, settings, clock, log):
    from papertrader.errors import InvalidInput, UsernameTaken, WeakPassword

    accounts = Accounts(db, replace(settings, registrations_per_address=2), clock, log)
    for _ in range(10):  # typos: refused by validation, before any work
        with pytest.raises(InvalidInput):
            await accounts.register("user1", "not an email", PASSWORD, "192.0.2.1")
        with pytest.raises(WeakPassword):
            await accounts.register("user1", "u1@example.com", "password", "192.0.2.1")
    await accounts.register("user1", "u1@example.com", PASSWORD, "192.0.2.1")
    with pytest.raises(UsernameTaken):  # valid, and it cost a password hash: counts
        await accounts.register("user1", "u1@example.com", PASSWORD, "192.0.2.1")
    with pytest.raises(Throttled):
        await accounts.register("user2", "u2@example.com", PASSWORD, "192.0.2.1")


@pytest_twisted.ensureDeferred
async def test_typos_do_not_lock_registration_through_a_worker(tmp_path, settings, database_url, clock):
    d = await start_cluster(tmp_path, replace(settings, registrations_per_address=3), database_url, clock)
    try:
        for n in range(10):
            status, out, _ = await d.cli("register", f"typo{n}", "no-at-sign", "--password-stdin",
                                         stdin=PASSWORD + "\n")
            assert json.loads(out)["error"] == "invalid_input"
        for n in range(3):
            status, out, err = await d.cli("register", f"user{n}", f"u{n}@example.com", "--password-stdin",
                                           stdin=PASSWORD + "\n")
            assert status == 0, err
        status, out, _ = await d.cli("register", "user3", "u3@example.com", "--password-stdin", stdin=PASSWORD + "\n")
        refused = json.loads(out)
        # Said as what it is (a class registering in one room hits it), with what the operator can change.
        assert refused["error"] == "throttled" and refused["message"].startswith(
            "too many registrations from this address (at most 3 every 15 minutes, a taken username counting as"
            " one: the operator may raise registrations_per_address); try again in "), refused
    finally:
        await d.cluster.stopService()


def test_a_refunded_attempt_no_longer_counts_toward_the_ceiling():
    clock = task.Clock()
    t = Throttle(clock, free=100, ceiling=2, window=10)
    for _ in range(5):
        t.check("k")
        t.refund("k")
    t.check("k")
    t.check("k")
    with pytest.raises(Throttled):
        t.check("k")
    t.refund("never counted")  # nothing to take back: nothing happens
    assert t.wait("never counted") == 0.0


@pytest_twisted.ensureDeferred
async def test_a_class_behind_one_address_is_not_held_off_by_its_own_sign_ins(tmp_path, settings, database_url,
                                                                              clock):
    # The per-address ceiling counts guesses: students signing in with their right passwords, from one
    # school address, again and again, are never throttled; wrong passwords from there still are.
    limited = replace(settings, login_ceiling=3, login_free_attempts=100, registrations_per_address=100)
    d = await start_cluster(tmp_path, limited, database_url, clock)
    try:
        for n in range(4):
            status, _, err = await d.cli("register", f"student{n}", f"s{n}@example.com", "--password-stdin",
                                         stdin=PASSWORD + "\n")
            assert status == 0, err
        for n in range(8):  # twice the ceiling, each student twice
            status, _, err = await d.cli("login", f"student{n % 4}", "--password-stdin", stdin=PASSWORD + "\n")
            assert status == 0, err
        for n in range(3):
            status, out, _ = await d.cli("login", f"student{n}", "--password-stdin", stdin="wrong guess!\n")
            assert json.loads(out)["error"] == "bad_credentials"
        status, out, _ = await d.cli("login", "student3", "--password-stdin", stdin=PASSWORD + "\n")
        assert json.loads(out)["error"] == "throttled"  # three guesses from the address: the ceiling
    finally:
        await d.cluster.stopService()
