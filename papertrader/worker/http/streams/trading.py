"""``/stream``: Alpaca's trade-update stream, as alpaca-py 0.44's ``TradingStream`` speaks it.

The client speaks first (no greeting)::

    -> {"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}}   (or {"action": "auth",
       "key": KEY, "secret": SECRET})
    <- {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
    -> {"action": "listen", "data": {"streams": ["trade_updates"]}}
    <- {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    <- {"stream": "trade_updates", "data": {"event": "fill", "timestamp": ..., "price": ..., "qty": ...,
        "position_qty": ..., "execution_id": ..., "order": {...Alpaca's order...}}}   (one per order event)

JSON in binary frames, as Alpaca sends them (alpaca-py reads text or binary); a client whose first
message is msgpack is answered in msgpack, as is one that asks for ``Content-Type: application/msgpack``.
A refused key gets ``authorization`` with ``"status": "unauthorized"`` and the connection closes;
other errors are ``{"stream": "error", "data": {"code": N, "message": TEXT}}`` with the codes of
:data:`.connection.CODES`.
"""

import uuid

from twisted.internet import defer

from papertrader import commands
from papertrader.errors import PaperTraderError
from papertrader.market.sources import asset_uuid
from papertrader.worker.http import alpaca
from papertrader.worker.http.streams.connection import StreamProtocol, message_of

TRADE_UPDATES = "trade_updates"

#: Our order events as Alpaca's trade-update events (the others have the same name).
EVENT_NAMES = {"accepted": "new"}

#: The namespace of fill execution ids (a fill's id is derived from its order and cumulative quantity).
EXECUTIONS = uuid.uuid5(uuid.NAMESPACE_URL, "papertrader:executions")


def trade_update(event):
    """An order event (as the master pushes it: ``event``, ``time``, ``order``, and for fills ``price``,
    ``quantity`` and ``position_quantity``) as the ``data`` of Alpaca's trade update."""
    order = event["order"][0] if isinstance(event["order"], list) else event["order"]
    data = {
        "event": EVENT_NAMES.get(event["event"], event["event"]),
        "timestamp": alpaca.when(event["time"]),
        "order": alpaca.order(dict(order, asset_id=asset_uuid(order["symbol"]))),
    }
    if event.get("price") is not None:
        data["price"] = alpaca.number(event["price"], "price")
        data["qty"] = alpaca.number(event["quantity"], "quantity")
        data["position_qty"] = alpaca.number(event["position_quantity"], "quantity")
        data["execution_id"] = str(uuid.uuid5(EXECUTIONS, f"{order['uuid']}:{order['filled_quantity']}"))
    return data


class TradeUpdatesProtocol(StreamProtocol):
    binary_json = True

    def __init__(self, hub, path):
        super().__init__(hub, path)
        self.listening = False
        #: The API key's portfolio (its uuid): the events of the account's other portfolios are not sent.
        self.portfolio_uuid = None

    def received(self, message):
        action = message.get("action")
        data = message.get("data")
        if action == "authenticate":
            data = data if isinstance(data, dict) else {}
            return self.authenticate(data.get("key_id"), data.get("secret_key"))
        if action == "auth":
            return self.authenticate(message.get("key"), message.get("secret"))
        if action == "listen":
            if not self.authenticated:
                return self.error(401)
            streams = data.get("streams") if isinstance(data, dict) else None
            if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams) or len(streams) > 16:
                return self.error(400, "listen takes data.streams, a list of stream names")
            return self.listen(TRADE_UPDATES in streams)
        return self.error(400, f"unknown action {str(action)[:32]!r}" if action is not None else "no action")

    def authorized(self):
        self.send({"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}})

    def refuse_auth(self, detail=None):
        if not self.closed:
            self.send({"stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"}})
        self.fail(402, detail)

    @defer.inlineCallbacks
    def listen(self, trade_updates):
        """Listen to the trade updates of the key's portfolio (or stop: an empty list, as Alpaca)."""
        fanout = self.hub.worker.order_fanout
        if trade_updates and self.portfolio_uuid is None:
            try:
                answer = yield self.hub.worker.gateway.forward(commands.Portfolio, {"token": self.token}, self.ip)
            except PaperTraderError as e:
                return self.error(500, e.message)
            if self.closed:
                return
            self.portfolio_uuid = answer["account_uuid"]
        if trade_updates and not self.listening:
            yield fanout.watch(self.watcher, [self.username])  # 'listening' once the master pushes them here
            if self.closed:
                return
            self.hub.log.info("stream {path}: {username} listens to trade_updates", path=self.path,
                              username=self.username)
        elif not trade_updates and self.listening:
            fanout.forget(self.watcher)
        self.listening = trade_updates
        self.send({"stream": "listening", "data": {"streams": [TRADE_UPDATES] if trade_updates else []}})

    def send_error(self, code, detail=None):
        self.send({"stream": "error", "data": {"code": code, "message": message_of(code, detail)}})

    def pushed(self, command, arguments):
        if (command is commands.OrderEvent and self.listening and not self.closed
                and arguments.get("portfolio_uuid") == self.portfolio_uuid):
            self.send({"stream": TRADE_UPDATES, "data": trade_update(arguments)})
