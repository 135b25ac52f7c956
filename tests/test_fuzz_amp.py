"""Fuzzing every AMP door (hypothesis) of a live cluster over TLS, on both databases.

Every client command at a worker, every command at the master from an unlinked connection and through a
linked worker's own link, every command of the master's admin channel (its Unix socket), with hostile arguments sent as raw AMP boxes (so AMP's own parsing is fuzzed too):
missing arguments, bytes that are not UTF-8, huge strings, negative and enormous numbers, NaN, Infinity and
exponents, unknown commands and extra keys.  The answer is always a result or a documented typed error
(never ``server_error``, ``UNKNOWN`` or ``UNHANDLED``), nothing logs a traceback, the same connection
answers a normal command afterwards, and the connection counts return to where they were.
"""

import collections
import os

import pytest_twisted
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

from papertrader import commands
from papertrader.commands import FORWARDED, stamped
from papertrader.errors import ALL_ERRORS, InvalidInput, UnknownCommand, WorkerRefused
from papertrader.master import admin_channel
from tests.fuzz_helpers import (TYPED, RawPeer, Tracebacks, boxes, close, connect, numbers, on_reactor, raw_bytes,
                                run_in_thread, unknown_names)
from tests.conftest import _reactor, bounded, until
from tests.test_e2e import register_and_login

#: Commands that would end the test's own session if sent with its real token.
ENDS_SESSION = {commands.Logout, commands.LogoutAll, commands.ChangePassword, commands.DeleteAccount,
                commands.EndSession, commands.SetPassword}
WORKER_COMMANDS = list(FORWARDED) + [commands.Assets, commands.Quote, commands.Watch, commands.WatchOrders]
MASTER_COMMANDS = [stamped(c) for c in FORWARDED] + [commands.ListWorkers, commands.WorkerHello,
                                                     commands.WorkerProve, commands.Authenticate,
                                                     commands.OrderWatchers]
#: Examples per fuzz test (PAPERTRADER_FUZZ_EXAMPLES: more for a longer run).
EXAMPLES = int(os.environ.get("PAPERTRADER_FUZZ_EXAMPLES", 300))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


#: What the fuzz tests saw, by outcome (printed with pytest -s): a check that they reach past the parsers.
SEEN = collections.Counter()


def code_of(cls):
    return ALL_ERRORS[cls]


async def session_token(d):
    await register_and_login(d)
    import json
    import os

    with open(os.path.join(d.home, "alice", "papertrader", "session.json")) as f:
        return json.load(f)["token"]


def counts(d):
    return (len(d.master.connections), [len(w.clients) for w in d.cluster.workers])


def check(outcome, what, command=None):
    """A result (that parses as ``command``'s answer) or a documented typed error, never a traceback."""
    SEEN[outcome[0] if outcome[0] == "ok" else outcome[1].decode()] += 1
    if outcome[0] == "ok" and command is not None:
        command.parseResponse(outcome[1], None)
    if outcome[0] == "error":
        _, code, description = outcome
        assert code in TYPED, (what, code, description[:300])
        text = description.decode("utf-8", "replace") if isinstance(description, bytes) else description
        assert "Traceback" not in text, what


async def fuzzed(fuzz):
    """Run a hypothesis test ``fuzz`` in a thread (the cluster stays on the reactor); print what it saw; no
    traceback may have been logged meanwhile."""
    SEEN.clear()
    with Tracebacks() as tracebacks:
        await run_in_thread(fuzz)
    print(dict(SEEN))
    assert tracebacks.failures == []


async def leaks_none(d, baseline):
    """The connections of the master and of each worker are back to (at most: a client of the set-up may
    have been closing when it was counted) the baseline."""
    def back():
        master, workers = counts(d)
        return master <= baseline[0] and all(n <= b for n, b in zip(workers, baseline[1]))

    await until(back, f"the connection counts to return to {baseline}")


@pytest_twisted.ensureDeferred
async def test_every_worker_command_with_hostile_arguments(deployment):
    d = deployment
    token = await session_token(d)
    worker = d.cluster.workers[0]
    baseline = counts(d)
    peer = await connect(d, worker.listener.port.getHost().port)
    known = {c.commandName for c in WORKER_COMMANDS}

    @FUZZ
    @given(st.data())
    def fuzz(data):
        if data.draw(st.integers(0, 9)) == 0:
            name, fields = data.draw(unknown_names(known)), data.draw(boxes(commands.Whoami))
            expected = {code_of(UnknownCommand)}
        else:
            command = data.draw(st.sampled_from(WORKER_COMMANDS))
            name = command.commandName
            fields = data.draw(boxes(command, None if command in ENDS_SESSION else token))
            expected = TYPED
        outcome = on_reactor(peer.send, name, fields)
        check(outcome, name, command if expected is TYPED else None)
        assert outcome[0] == "ok" or outcome[1] in expected, (name, outcome)
        # The same connection still answers a normal command.
        assert on_reactor(peer.send, b"Assets", {})[0] == "ok"

    await fuzzed(fuzz)
    await close(peer)
    await leaks_none(d, baseline)
    # Nor a watcher left behind by a closed connection.
    assert len(worker.fanout) == 0 and len(worker.order_fanout) == 0
    status, out, err = await d.cli("whoami", user="alice")
    assert status == 0, err


@pytest_twisted.ensureDeferred
async def test_master_commands_from_an_unlinked_connection_are_refused(deployment):
    d = deployment
    baseline = counts(d)
    peer = await connect(d, d.master_port)
    known = {c.commandName for c in MASTER_COMMANDS}
    refused = {code_of(WorkerRefused), code_of(InvalidInput)}

    @FUZZ
    @given(st.data())
    def fuzz(data):
        if data.draw(st.integers(0, 9)) == 0:
            name, expected = data.draw(unknown_names(known)), {code_of(UnknownCommand)}
            fields = data.draw(boxes(commands.ListWorkers))
        else:
            command = data.draw(st.sampled_from(MASTER_COMMANDS))
            name, fields = command.commandName, data.draw(boxes(command))
            # Anything but the worker list and the handshake is refused to a connection that is no worker.
            expected = TYPED if command in (commands.ListWorkers, commands.WorkerHello) else refused
        outcome = on_reactor(peer.send, name, fields)
        check(outcome, name)
        if name != b"ListWorkers":
            assert outcome[0] == "error" and outcome[1] in expected, (name, outcome)
        assert on_reactor(peer.send, b"ListWorkers", {})[0] == "ok"

    await fuzzed(fuzz)
    await close(peer)
    await leaks_none(d, baseline)


@pytest_twisted.ensureDeferred
async def test_master_commands_through_a_linked_worker(deployment):
    """The master's responders behind the worker check, fuzzed through a real worker's proven link."""
    d = deployment
    token = await session_token(d)
    link = d.cluster.workers[1].link.proven
    commands_here = [stamped(c) for c in FORWARDED] + [commands.Authenticate]

    @FUZZ
    @given(st.data())
    def fuzz(data):
        command = data.draw(st.sampled_from(commands_here))
        fields = data.draw(boxes(command, None if command.__bases__[0] in ENDS_SESSION else token))
        outcome = on_reactor(RawPeer.send, link, command.commandName, fields)
        check(outcome, command.commandName, command)

    await fuzzed(fuzz)
    assert d.cluster.workers[1].link.proven is link  # the link was never dropped
    status, out, err = await d.cli("--worker", "worker2", "whoami", user="alice")
    assert status == 0, err


#: Whole boxes that break the protocol: the server must close their connection itself.
VIOLATIONS = st.one_of(
    st.builds(lambda key: b"\x01\x00" + key, st.binary(min_size=256, max_size=300)),  # a key over 255 bytes
    st.builds(lambda tag: b"\x00\x07_answer\x00" + bytes([len(tag)]) + tag + b"\x00\x00",
              st.binary(min_size=1, max_size=9)),  # an answer to nothing asked
    st.builds(lambda v: b"\x00\x03foo\x00" + bytes([len(v)]) + v + b"\x00\x00",
              st.binary(min_size=1, max_size=9)),  # neither a command nor an answer
    st.builds(lambda v: b"\x00\x06_error\x00\x01" + v + b"\x00\x00", st.binary(min_size=1, max_size=1)),
)


ADMIN_COMMANDS = [commands.AdminWorkers, commands.AdminMarket, commands.AdminKick, commands.AdminAllow,
                  commands.AdminRevoke, commands.AdminAllowIp, commands.AdminCreateGame, commands.AdminEnrol]


@pytest_twisted.ensureDeferred
async def test_admin_channel_commands_with_hostile_arguments(deployment):
    """The master's admin channel (the Unix socket ``papertrader-admin`` uses, its owner's only): every admin
    command with hostile arguments, and unknown ones, is answered with a result or a typed error; the
    channel, the master and its workers go on."""
    d = deployment
    workers = {w.name.encode() for w in d.cluster.workers}
    peer = await bounded(connectProtocol(UNIXClientEndpoint(_reactor(), admin_channel.socket_path(d.data_dir)),
                                         RawPeer()), "a connection to the admin channel")
    known = {c.commandName for c in ADMIN_COMMANDS}

    @FUZZ
    @given(st.data())
    def fuzz(data):
        if data.draw(st.integers(0, 9)) == 0:
            name, fields, expected = data.draw(unknown_names(known)), {}, {code_of(UnknownCommand)}
        else:
            command = data.draw(st.sampled_from(ADMIN_COMMANDS))
            name, fields, expected = command.commandName, data.draw(boxes(command)), TYPED
            assume(fields.get(b"name") not in workers)  # the test's own workers stay linked
        outcome = on_reactor(peer.send, name, fields)
        check(outcome, name)
        assert outcome[0] == "ok" or outcome[1] in expected, (name, outcome)
        assert on_reactor(peer.send, b"AdminWorkers", {})[0] == "ok"

    await fuzzed(fuzz)
    await close(peer)
    assert set(d.master.workers.linked) >= {w.name for w in d.cluster.workers}
    status, out, err = await d.cli("assets")
    assert status == 0, err


@pytest_twisted.ensureDeferred
async def test_boxes_that_break_the_protocol_close_only_their_connection(deployment):
    """A box that breaks the protocol cannot be answered: the server closes that connection (a line in the log,
    no traceback); random bytes, then a hang-up, harm nothing either; the others go on, the counts return to
    the baseline."""
    d = deployment
    worker = d.cluster.workers[0]
    port = worker.listener.port.getHost().port
    baseline = counts(d)
    bystander = await connect(d, port)

    @settings(FUZZ, max_examples=60)
    @given(st.tuples(st.booleans(), VIOLATIONS, st.binary(min_size=1, max_size=300)))
    def fuzz(example):
        violation, box, garbage = example

        async def one():
            peer = await connect(d, port)
            if violation:
                peer.raw(box)
                await bounded(peer.closed, "the server to close a connection that broke the protocol")
            else:
                peer.raw(garbage)  # it may wait for the rest of a box: hang up
                await close(peer)
        on_reactor(one)
        assert on_reactor(bystander.send, b"Assets", {})[0] == "ok"

    with Tracebacks() as tracebacks:
        await run_in_thread(fuzz)
    assert tracebacks.failures == []
    await close(bystander)
    await leaks_none(d, baseline)


@pytest_twisted.ensureDeferred
async def test_unanswerable_commands_without_an_ask_keep_the_connection(deployment):
    """A command sent without asking for an answer, with bad arguments or unknown, is dropped quietly."""
    d = deployment
    peer = await connect(d, d.cluster.workers[0].listener.port.getHost().port)
    with Tracebacks() as tracebacks:
        for name, fields in ((b"Quote", {b"symbol": b"\xff"}), (b"Nothing", {}), (b"Candles", {})):
            peer.callRemoteString(name, requiresAnswer=False, **{k.decode(): v for k, v in fields.items()})
        assert (await peer.send(b"Assets", {}))[0] == "ok"
    assert tracebacks.failures == []
    await close(peer)


def test_raw_bytes_cover_what_utf8_refuses():
    """The strategies do reach AMP's parser: some of their raw values are not UTF-8."""
    @settings(max_examples=50, database=None)
    @given(raw_bytes)
    def sample(value):
        samples.append(value)

    samples = []
    sample()
    bad = [v for v in samples if not _utf8(v)]
    assert bad


def _utf8(value):
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


nice_numbers = st.sampled_from(["1", "2", "0.5", "10", "3", "100.25", "150", "0.001"])
numbers_text = st.one_of(
    nice_numbers, nice_numbers, nice_numbers,
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1", "0.5", "10", "1e0", "1E2", "1e-2", "1e999999999", "-1e-999999999", "NaN", "sNaN", "-0",
                     "Infinity", "0E-10", "1.000000", "0.0000001", "1e400", "100000000000000000000", "١", "1_0"]),
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,8})?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
)


@pytest_twisted.ensureDeferred
async def test_orders_with_hostile_numbers_are_answered_exactly_once(deployment):
    """With a real session, orders, replaces, cancels and closes whose numbers are hostile: each is refused
    (typed) or makes exactly the order it answers; nothing half-written (the orders table holds exactly the
    answered orders), the books never negative."""
    d = deployment
    token = await session_token(d)
    worker = d.cluster.workers[0]
    peer = await connect(d, worker.listener.port.getHost().port)
    made = set()

    @FUZZ
    @given(st.data())
    def fuzz(data):
        kind = data.draw(st.sampled_from(["place", "place", "replace", "cancel", "close"]))
        fields = {b"token": token.encode()}
        if kind == "place":
            command = commands.PlaceOrder
            fields.update({b"client_order_id": f"f{data.draw(st.integers(0, 10**6))}".encode(),
                           b"side": data.draw(st.sampled_from([b"buy", b"buy", b"sell", b"BUY", b"short"])),
                           b"symbol": data.draw(st.sampled_from([b"AAPL", b"AAPL", b"MSFT", b"aapl", b"NOPE"])),
                           b"type": data.draw(st.sampled_from([b"market", b"limit", b"stop", b"stop_limit",
                                                               b"trailing_stop"]))})
            shapes = {b"market": [b"quantity"], b"limit": [b"quantity", b"limit_price"],
                      b"stop": [b"quantity", b"stop_price"],
                      b"stop_limit": [b"quantity", b"stop_price", b"limit_price"],
                      b"trailing_stop": [b"quantity", b"trail_percent"]}
            if data.draw(st.booleans()):  # the fields its type needs
                names = shapes[fields[b"type"]]
            else:
                names = data.draw(st.lists(st.sampled_from([b"quantity", b"notional", b"limit_price", b"stop_price",
                                                            b"trail_price", b"trail_percent"]), min_size=1,
                                           max_size=3, unique=True))
            for name in names:
                fields[name] = data.draw(numbers_text).encode()
        elif kind in ("replace", "cancel"):
            command = commands.ReplaceOrder if kind == "replace" else commands.CancelOrder
            # (what is drawn never depends on the live state, so that hypothesis can replay an example)
            pick, other = data.draw(st.integers(0, 1000)), data.draw(numbers)
            known = sorted(made)
            fields[b"order_id"] = str(known[pick % len(known)] if known and pick % 4 else other).encode()
            if kind == "replace":
                fields[b"client_order_id"] = f"r{data.draw(st.integers(0, 10**6))}".encode()
                for name in data.draw(st.lists(st.sampled_from([b"quantity", b"limit_price", b"stop_price",
                                                                b"trail"]), max_size=2, unique=True)):
                    fields[name] = data.draw(numbers_text).encode()
        else:
            command = commands.ClosePosition
            fields[b"symbol"] = b"AAPL"
            name = data.draw(st.sampled_from([b"quantity", b"percentage"]))
            fields[name] = data.draw(numbers_text).encode()
        outcome = on_reactor(peer.send, command.commandName, fields)
        check(outcome, command.commandName, command)
        if outcome[0] == "ok":
            made.add(command.parseResponse(outcome[1], None)["id"])

    await fuzzed(fuzz)
    await d.tick()
    rows = await d.master.db.query("SELECT id FROM orders")
    assert {r[0] for r in rows} == made
    rows = await d.master.db.query("SELECT cash_cents FROM accounts")
    assert all(r[0] >= 0 for r in rows)
    await close(peer)


@pytest_twisted.ensureDeferred
async def test_text_with_nul_is_invalid_input_on_both_databases(deployment):
    """Found by the fuzz on PostgreSQL (which cannot store NUL): an order uuid of NUL characters was a
    server_error there.  No text argument may hold NUL, at the worker or the master."""
    d = deployment
    token = (await session_token(d)).encode()
    peer = await connect(d, d.cluster.workers[0].listener.port.getHost().port)
    link = d.cluster.workers[1].link.proven
    stamp = {b"received": b"2000-01-01T00:00:00.000000-00:00", b"client_ip": b"", b"worker": b"worker2"}
    with Tracebacks() as tracebacks:
        for name, fields in ((b"CancelOrder", {b"token": token, b"order_uuid": b"\x00" * 1000}),
                             (b"GetOrder", {b"token": token, b"client_order_id": b"a\x00b"}),
                             (b"Quote", {b"symbol": b"AAPL\x00"}),
                             (b"Watch", {b"symbols": b"\x00\x04AAPL\x00\x05MS\x00FT"}),
                             (b"Login", {b"username": b"alice\x00", b"password": b"x", b"remember": b"False"})):
            outcome = await peer.send(name, fields)
            assert outcome[:2] == ("error", code_of(InvalidInput)) and "NUL" in outcome[2], (name, outcome)
            outcome = await RawPeer.send(link, b"Stamped" + name, {**fields, **stamp}) \
                if name not in (b"Quote", b"Watch") else outcome
            assert outcome[:2] == ("error", code_of(InvalidInput)), (name, outcome)
    assert tracebacks.failures == []
    await close(peer)
