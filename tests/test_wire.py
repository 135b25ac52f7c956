"""papertrader/wire.py over an in-memory transport (twisted.test.iosim): what TypedAMP answers where plain
AMP would answer UNKNOWN and drop the connection."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.protocols import amp
from twisted.test import iosim

from papertrader import commands
from papertrader.commands import MAX_VALUE, chunks
from papertrader.errors import ALL_ERRORS, InvalidInput, ServerError, UnknownCommand, UnknownSymbol
from papertrader.wire import MAX_MESSAGE, TypedAMP, parse_arguments, parse_time, split_boxes
from tests.fuzz_helpers import Tracebacks


class Echo(amp.Command):
    arguments = [(b"text", amp.Unicode()), (b"count", amp.Integer(optional=True))]
    response = [(b"text", amp.Unicode())]
    errors = ALL_ERRORS


class Server(TypedAMP):
    def __init__(self):
        super().__init__()
        self.failures = []

    def log_failure(self, failure, what):
        self.failures.append(what)

    @Echo.responder
    def echo(self, text, count=None):
        if text == "boom":
            raise RuntimeError("a bug")
        if text == "long":
            raise UnknownSymbol("x" * 100_000)
        if text == "huge":
            return {"text": "é" * 40_000}  # 80,000 bytes: more than one AMP value
        return {"text": text * (count or 1)}


def call(name, fields):
    client, server, pump = iosim.connectedServerAndClient(ServerClass=Server, ClientClass=amp.AMP, greet=True)
    outcome = []
    client._sendBoxCommand(name, amp.AmpBox(fields)).addCallbacks(
        lambda box: outcome.append(("ok", box)), lambda f: outcome.append(("error", f.value.errorCode,
                                                                           f.value.description)))
    pump.flush()
    # The connection stays open: it answers again.
    again = []
    client.callRemote(Echo, text="ok").addCallback(again.append)
    pump.flush()
    assert again == [{"text": "ok"}] and not server.transport.disconnecting
    return outcome[0], server


def test_arguments_amp_cannot_parse_are_invalid_input_naming_them():
    """In the words of the person who sent them: the argument, not the command (a worker passes a client's
    PlaceOrder on as StampedPlaceOrder, a name that means nothing to them)."""
    code = ALL_ERRORS[InvalidInput]
    for fields, words in (({}, "text is missing"), ({b"text": b"\xff"}, "text is not valid"),
                          ({b"text": b"a", b"count": b"abc"}, "count is not valid"),
                          ({b"text": b"a", b"count": str(2**63).encode()}, "count is out of range"),
                          ({b"text": b"a\x00b"}, "text contains a NUL character")):
        with Tracebacks() as tracebacks:
            (kind, got, description), server = call(b"Echo", fields)
        assert (kind, got, description) == ("error", code, words), fields
        assert tracebacks.failures == [] and server.failures == []


def test_an_unknown_command_is_unknown_command():
    (kind, code, description), _ = call(b"Nothing" * 100, {})
    assert code == ALL_ERRORS[UnknownCommand] and len(description) < 200


def test_a_failing_responder_or_an_answer_too_big_is_a_logged_server_error():
    for text, what in ((b"boom", "Echo"), (b"huge", "serializing the answer to Echo")):
        (kind, code, description), server = call(b"Echo", {b"text": text})
        assert code == ALL_ERRORS[ServerError] and "Traceback" not in description
        assert server.failures == [what]


def test_a_long_message_is_cut_to_fit():
    (kind, code, description), _ = call(b"Echo", {b"text": b"long"})
    assert code == ALL_ERRORS[UnknownSymbol] and len(description) == MAX_MESSAGE + 3


def test_a_result_is_a_result():
    (kind, box), _ = call(b"Echo", {b"text": b"ab", b"count": b"3"})
    assert kind == "ok" and box[b"text"] == b"ababab"


class Pushed(amp.Command):
    arguments = [(b"rows", amp.AmpList([(b"text", amp.Unicode())]))]
    requiresAnswer = False


def test_pushed_rows_are_split_into_values_amp_can_carry():
    """A push of many order events (a step filling many orders) goes in several messages, each within AMP's
    64 KiB value; one row goes as it is."""
    rows = [{"text": str(i) * 30_000} for i in range(5)]
    split = list(chunks(Pushed, "rows", rows))
    assert [len(c) for c in split] == [2, 2, 1] and [r for c in split for r in c] == rows
    argument = dict(Pushed.arguments)[b"rows"]
    assert all(len(argument.toStringProto(c, None)) <= MAX_VALUE for c in split)
    assert list(chunks(Pushed, "rows", rows[:1])) == [rows[:1]] and list(chunks(Pushed, "rows", [])) == []


def test_our_commands_encode_as_amp_does():
    """papertrader's commands write their boxes with each argument's Python name found once (wire.encode); the
    bytes are AMP's own, for a command's arguments and its answer, lists of lists, optional values left out or
    given; and what AMP refuses, they refuse."""
    now = datetime(2026, 1, 2, 15, 30, tzinfo=timezone.utc)
    order = dict(id=1, uuid="0f8fad5b-d9cb-469f-a165-70867728950e", client_order_id="abc", symbol="AAPL", side="buy",
                 type="limit", time_in_force="gtc", status="new", quantity=Decimal("1.5"), notional=None,
                 limit_price=Decimal("100.5"), filled_quantity=Decimal(0), commission=Decimal(0), created=now,
                 updated=now, legs=[])
    proto = amp.AMP()
    cases = [
        (commands.PlaceOrder, "response", dict(order, legs=[dict(order, id=2, legs=None)])),
        (commands.PlaceOrder, "arguments", dict(token="t", client_order_id="c", side="buy", symbol="AAPL",
                                                 quantity="1", limit_price=None, type="limit")),
        (commands.OrderEvents, "arguments", dict(events=[dict(username="alice", event="fill", time=now,
                                                              price=Decimal("100.25"), order=[order])] * 3)),
        (commands.Watch, "arguments", dict(symbols=["AAPL", "MSFT"])),
    ]
    for command, which, objects in cases:
        ours = command.makeResponse(objects, proto) if which == "response" else command.makeArguments(objects, proto)
        theirs = amp._objectsToStrings(objects, getattr(command, which), amp.AmpBox(), proto)
        assert ours == theirs and ours.serialize() == theirs.serialize(), (command, which)
    with pytest.raises(KeyError):  # a required argument missing
        commands.Watch.makeArguments({}, proto)
    with pytest.raises(amp.InvalidSignature):  # one it does not take
        commands.Watch.makeArguments(dict(symbols=["AAPL"], colour="red"), proto)
    with pytest.raises(amp.InvalidSignature, match="forgot symbols for b'Watch'"):  # as AMP says it
        commands.Watch()


def test_our_commands_read_boxes_as_amp_does_and_refuse_a_list_cut_short():
    """An answer's and a push's lists and times are read by wire.decode (AMP's reader ran a whole protocol over
    each list's bytes and parsed each time by hand: 95 us for one order event, 22 us now); what it reads is what
    AMP reads, for arguments and answers, lists of lists, optional values absent or given, times with any
    offset.  A list whose bytes end inside a box, which AMP silently shortens by that row, is refused."""
    now = datetime(2026, 1, 2, 15, 30, 1, 250000, tzinfo=timezone.utc)
    order = dict(id=1, uuid="0f8fad5b-d9cb-469f-a165-70867728950e", client_order_id="abc", symbol="AAPL", side="buy",
                 type="limit", time_in_force="gtc", status="new", quantity=Decimal("1.5"),
                 limit_price=Decimal("100.5"), filled_quantity=Decimal(0), commission=Decimal(0), created=now,
                 updated=now + timedelta(seconds=1), expires=now.astimezone(timezone(timedelta(hours=-5))))
    proto = amp.AMP()
    cases = [
        (commands.PlaceOrder, "response", dict(order, legs=[dict(order, id=2)])),
        (commands.PlaceOrder, "arguments", dict(token="t", client_order_id="c", side="buy", symbol="AAPL",
                                                 quantity="1", type="limit")),
        (commands.OrderEvents, "arguments", dict(events=[dict(username="alice", event="fill", time=now,
                                                              price=Decimal("100.25"), order=[order])] * 3)),
        (commands.Watch, "arguments", dict(symbols=["AAPL", "MSFT"])),
    ]
    read = []
    for command, which, objects in cases:
        box = command.makeResponse(objects, proto) if which == "response" else command.makeArguments(objects, proto)
        wire_box = amp.AmpBox(amp.parseString(box.serialize())[0])  # as it arrives
        ours = (command.parseResponse if which == "response" else command.parseArguments)(wire_box, proto)
        assert ours == amp._stringsToObjects(wire_box, getattr(command, which), proto), (command, which)
        read.append(ours)
    assert [e["order"][0]["limit_price"] for e in read[2]["events"]] == [Decimal("100.5")] * 3
    assert read[0]["legs"][0]["id"] == 2 and read[3] == {"symbols": ["AAPL", "MSFT"]}
    parsed = commands.PlaceOrder.parseResponse(commands.PlaceOrder.makeResponse(dict(order, legs=[]), proto), proto)
    assert parsed["expires"] == order["expires"] and parsed["expires"].utcoffset() == timedelta(hours=-5)
    assert parsed["legs"] == [] and parsed["notional"] is None

    # A list cut short (an order event's bytes ending in its order) is refused, not read as one row fewer.
    box = commands.OrderEvents.makeArguments(cases[2][2], proto)
    cut = amp.AmpBox(box, events=box[b"events"][:-40])
    assert len(amp._stringsToObjects(cut, commands.OrderEvents.arguments, proto)["events"]) == 2  # AMP: a row gone
    with pytest.raises(ValueError):
        commands.OrderEvents.parseArguments(cut, proto)
    unended = amp.AmpBox(box, events=box[b"events"][:-2])  # cut between its last value and its end
    with pytest.raises(ValueError):
        commands.OrderEvents.parseArguments(unended, proto)
    with pytest.raises(InvalidInput, match="events is not valid"):
        parse_arguments(commands.OrderEvents, cut, proto)
    with pytest.raises(KeyError):  # a required argument missing, in an answer
        commands.PlaceOrder.parseResponse(amp.AmpBox(), proto)

    # Times: AMP's 32 characters with their offset, or nothing.
    assert parse_time(b"2026-01-02T15:30:01.250000-00:00") == now
    assert parse_time(b"2026-01-02T10:30:01.250000-05:00") == now
    for bad in (b"2026-01-02T15:30:01.250000", b"2026-01-02T15:30:01.250000-00:00 ", b"2026-13-02T15:30:01.250000-00:00",
                b"\xff" * 32):
        with pytest.raises(ValueError):
            parse_time(bad)


def _boxes():
    keys = st.binary(min_size=1, max_size=amp.MAX_KEY_LENGTH)
    return st.lists(st.dictionaries(keys, st.binary(max_size=300), max_size=6), max_size=5)


def test_a_list_of_boxes_splits_into_the_boxes_it_was_made_of():
    """wire.split_boxes against AMP's own writer: any rows, any keys AMP allows, any values, empty rows too."""
    @settings(max_examples=200, deadline=None, database=None)
    @given(_boxes())
    def check(rows):
        data = b"".join(amp.AmpBox(row).serialize() for row in rows)
        assert split_boxes(data) == rows

    check()


def test_any_bytes_split_into_boxes_that_make_them_again_or_are_refused():
    """Hostile bytes in a list (cut anywhere, lengths past the end, keys too long): ValueError or boxes that
    serialize back to exactly those bytes, never a box made up of a part of them."""
    @settings(max_examples=300, deadline=None, database=None)
    @given(_boxes(), st.data())
    def check(rows, data):
        whole = b"".join(amp.AmpBox(row).serialize() for row in rows)
        cut = data.draw(st.integers(0, len(whole)))
        noise = data.draw(st.binary(max_size=8))
        for text in (whole[:cut], whole[:cut] + noise, noise):
            try:
                boxes = split_boxes(text)
            except ValueError:
                continue
            assert b"".join(amp.AmpBox(box).serialize() for box in boxes) == text

    check()
    # A key longer than AMP allows (255 bytes), which AMP's writer cannot make, is refused too.
    key = b"k" * (amp.MAX_KEY_LENGTH + 1)
    with pytest.raises(ValueError):
        split_boxes(len(key).to_bytes(2, "big") + key + b"\x00\x01v\x00\x00")
