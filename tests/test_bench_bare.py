"""The load benchmark's bare server (bench/bare_amp.py) answers the commands the load sends as a worker does: it
refused every PlaceOrder for two days once the command gained optional arguments (AMP passes an absent one as
None), and the benchmark compared the worker with a server that answered no order."""

import os
import sys

import pytest_twisted
from twisted.protocols import amp

from papertrader import commands

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import bare_amp  # noqa: E402


def answer(proto, command, **arguments):
    box = amp.AmpBox(command.makeArguments(arguments, proto))
    return proto.locateResponder(command.commandName)(box)


@pytest_twisted.ensureDeferred
async def test_the_bare_server_answers_the_loads_orders_and_quotes():
    proto = bare_amp.Server().buildProtocol(None)
    placed = await answer(proto, commands.PlaceOrder, token="t", client_order_id="c1", side="buy", symbol="AAPL",
                          quantity="1", type="limit", time_in_force="gtc", limit_price="1.00")
    assert commands.PlaceOrder.parseResponse(placed, proto)["status"] == "new"
    quoted = await answer(proto, commands.Quote, symbol="AAPL")
    assert commands.Quote.parseResponse(quoted, proto)["symbol"] == "AAPL"
