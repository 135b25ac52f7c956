"""The load benchmark's lean client (bench/amp_load.py) sends what a real client sends, byte for byte, so the
server measured sees the same load; it only reads less of what comes back (an answer's tag, an error's code)."""

import os
import sys

from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from papertrader import commands
from papertrader.client.protocol import ClientProtocol

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import amp_load  # noqa: E402

ORDER = dict(side="buy", quantity="1", type="limit", time_in_force="gtc")


def sent(proto):
    transport = StringTransport()
    proto.makeConnection(transport)
    return transport


def prepared_client(token="tok", symbol="AAPL", limit_price="95.50"):
    """The per-client boxes Load.connect_one makes, without a server to connect to."""
    client = dict(token=token, symbol=symbol, limit_price=limit_price)
    load = amp_load.Load(None, dict(order=ORDER, tag="t", watch=False))
    load.prepare(client)
    return load, client


def test_the_lean_clients_quote_and_order_are_the_real_clients_bytes():
    real, lean = ClientProtocol(), amp_load.LeanClient()
    real_out, lean_out = sent(real), sent(lean)
    load, client = prepared_client()
    real.callRemote(commands.Quote, symbol="AAPL")
    real.callRemote(commands.PlaceOrder, token="tok", client_order_id="t-7", symbol="AAPL", limit_price="95.50",
                    **ORDER)
    load.call_one(lean, client, 7, "quote")
    load.call_one(lean, client, 7, "order")
    assert lean_out.value() == real_out.value()
    assert b"client_order_id" in lean_out.value() and b"t-7" in lean_out.value()


def test_a_push_is_counted_and_answered_and_an_error_keeps_its_code():
    lean = amp_load.LeanClient()
    out = sent(lean)
    counted = []
    lean.count = counted.append
    tick = amp.AmpBox(_command=b"Tick", _ask=b"9", symbol=b"AAPL", price=b"1.00", time=b"x")
    lean.ampBoxReceived(tick)
    assert counted == ["ticks"]
    assert amp.parseString(out.value()) == [amp.AmpBox(_answer=b"9")]
    load, client = prepared_client()
    out.clear()
    what, d = load.call_one(lean, client, 1, "order")
    failures = []
    d.addErrback(failures.append)
    [asked] = amp.parseString(out.value())
    lean.ampBoxReceived(amp.AmpBox(_error=asked[b"_ask"], _error_code=b"throttled", _error_description=b"busy"))
    load.failed(failures[0], what, True)
    assert load.errors == {"order: throttled": 1}
