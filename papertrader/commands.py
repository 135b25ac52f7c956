"""Every AMP command between clients, workers and master, defined once.

Clients send the *client commands* to a worker.  The worker passes each one on
to the master as its *stamped* twin (same arguments plus ``received``,
``client_ip`` and ``worker``), made by :func:`stamped`.  The only command a
client sends to the master directly is :class:`ListWorkers`.
"""

from twisted.protocols import amp

from papertrader import wire
from papertrader.errors import ALL_ERRORS

#: Largest list any command returns; AMP caps one value at 65,535 bytes.
MAX_LIST = 200


class Command(amp.Command):
    errors = ALL_ERRORS

    # AMP's own, but with each argument's Python name found once per command (papertrader/wire.py ``plan``): AMP
    # named every argument anew, and checked the names given against a set it made again, at every call.
    def __init__(self, **kw):
        self.structured = kw
        forgotten = [name for name in wire.plan(self.arguments).required if name not in kw]
        if forgotten:
            raise amp.InvalidSignature("forgot {} for {}".format(", ".join(forgotten), self.commandName))  # (as AMP's)

    @classmethod
    def makeArguments(cls, objects, proto):
        names = wire.plan(cls.arguments).names
        for given in objects:
            if given not in names:
                raise amp.InvalidSignature(f"{given} is not a valid argument")
        return wire.encode(cls.arguments, objects, proto, cls.commandType())

    @classmethod
    def makeResponse(cls, objects, proto):
        return wire.encode(cls.response, objects, proto, cls.responseType())

    # And read by papertrader/wire.py ``decode``: an answer's or a push's lists and times are read there.
    @classmethod
    def parseArguments(cls, box, proto):
        return wire.decode(cls.arguments, box, proto)

    @classmethod
    def parseResponse(cls, box, proto):
        return wire.decode(cls.response, box, proto)


#: The largest value AMP can carry (a whole list answer is one value).
MAX_VALUE = 0xFFFF


def fit(command, key, rows):
    """The newest ``rows`` (oldest first in the list) of ``command``'s list answer ``key`` that fit in
    one AMP value; older rows are left out rather than failing the whole answer."""
    argument = dict(command.response)[key.encode("ascii")]
    kept, total = 0, 0
    for row in reversed(rows):
        size = len(argument.toStringProto([row], None))
        if total + size > MAX_VALUE:
            break
        total += size
        kept += 1
    return rows[len(rows) - kept:]


def chunks(command, key, rows):
    """Split ``rows`` into lists that each fit in one AMP value of ``command``'s argument ``key`` (a row too large
    for one goes alone, as it is)."""
    if len(rows) == 1:  # (most pushes: one order's event; nothing to split, and no need to encode it twice)
        yield rows
        return
    argument = dict(command.arguments)[key.encode("ascii")]
    chunk, total = [], 0
    for row in rows:
        size = len(argument.toStringProto([row], None))
        if chunk and total + size > MAX_VALUE:
            yield chunk
            chunk, total = [], 0
        chunk.append(row)
        total += size
    if chunk:
        yield chunk


def _order_fields():
    """An order as every command shows it (see papertrader/app/trading.py ``order_view``)."""
    return [
        (b"id", amp.Integer()),
        (b"uuid", amp.Unicode()),
        (b"client_order_id", amp.Unicode()),
        (b"symbol", amp.Unicode()),
        (b"side", amp.Unicode()),
        (b"type", amp.Unicode()),
        (b"time_in_force", amp.Unicode()),
        (b"status", amp.Unicode()),
        (b"quantity", amp.Decimal(optional=True)),
        (b"notional", amp.Decimal(optional=True)),
        (b"limit_price", amp.Decimal(optional=True)),
        (b"stop_price", amp.Decimal(optional=True)),
        (b"trail_price", amp.Decimal(optional=True)),
        (b"trail_percent", amp.Decimal(optional=True)),
        (b"stop_level", amp.Decimal(optional=True)),
        (b"filled_quantity", amp.Decimal()),
        (b"average_price", amp.Decimal(optional=True)),
        (b"commission", amp.Decimal()),
        (b"created", amp.DateTime()),
        (b"updated", amp.DateTime()),
        (b"expires", amp.DateTime(optional=True)),
        (b"trades_at", amp.DateTime(optional=True)),
        (b"replaces", amp.Integer(optional=True)),
        (b"replaced_by", amp.Integer(optional=True)),
        (b"replaces_uuid", amp.Unicode(optional=True)),
        (b"replaced_by_uuid", amp.Unicode(optional=True)),
        (b"watermark", amp.Decimal(optional=True)),
        (b"reason_code", amp.Unicode(optional=True)),
        (b"reason", amp.Unicode(optional=True)),
        # Bracket, OCO and OTO orders (papertrader/trading/contingent.py): simple, bracket, oco or oto; an exit's
        # part (take_profit or stop_loss) and the order it hangs from.
        (b"order_class", amp.Unicode(optional=True)),
        (b"leg", amp.Unicode(optional=True)),
        (b"parent_id", amp.Integer(optional=True)),
        (b"parent_uuid", amp.Unicode(optional=True)),
        # buy_to_open, buy_to_close, sell_to_open (a short sale) or sell_to_close, as when it was accepted
        # (absent for orders stored before schema version 16).
        (b"position_intent", amp.Unicode(optional=True)),
    ]


def _order_with_legs():
    """An order with the exits that hang from it (``legs``: a bracket's, OCO's or OTO's first part)."""
    return _order_fields() + [(b"legs", amp.AmpList(_order_fields(), optional=True))]


_FILL = [(b"time", amp.DateTime()), (b"quantity", amp.Decimal()), (b"price", amp.Decimal()),
         (b"commission", amp.Decimal()), (b"amount", amp.Decimal()), (b"model", amp.Unicode())]

#: An order event as pushed: what happened, when (market time), the order after it, and for fills
#: the fill's price and quantity and the position after it.
_EVENT = [(b"event", amp.Unicode()), (b"time", amp.DateTime()), (b"price", amp.Decimal(optional=True)),
          (b"quantity", amp.Decimal(optional=True)), (b"position_quantity", amp.Decimal(optional=True)),
          (b"portfolio", amp.Unicode(optional=True)), (b"portfolio_uuid", amp.Unicode(optional=True))]


#: A quote: its price, its source time (the end of the bar it came from), whether it is stale (no fresh
#: bar for longer than the master's max_quote_age while the market was open), the asset's name, a bid and
#: an ask (the price -/+ the fill model's half-spread), the previous session's close, and the bar.
_QUOTE = [(b"symbol", amp.Unicode()), (b"price", amp.Decimal()), (b"time", amp.DateTime()),
          (b"stale", amp.Boolean(optional=True)), (b"name", amp.Unicode(optional=True)),
          (b"bid", amp.Decimal(optional=True)), (b"ask", amp.Decimal(optional=True)),
          (b"previous_close", amp.Decimal(optional=True)),
          # When the session this price is of opened (a new one begins a new day for today's change).
          (b"session_open", amp.DateTime(optional=True)),
          # The bar this price came from (with the update that brought it, not in snapshots):
          (b"bar_start", amp.DateTime(optional=True)), (b"open", amp.Decimal(optional=True)),
          (b"high", amp.Decimal(optional=True)), (b"low", amp.Decimal(optional=True)),
          (b"volume", amp.Integer(optional=True)),
          # A bar of a whole session's: midnight of its day in the market's zone (the REST API's daily bar's time).
          (b"bar_day", amp.DateTime(optional=True))]
_ACCOUNT = [(b"username", amp.Unicode()), (b"email", amp.Unicode()), (b"cash", amp.Decimal())]


# --- asked of the master directly -------------------------------------------


class ListWorkers(Command):
    """The workers a client may use: connected, verified, healthy ones, with their load (clients); and
    ``timezone``, the market calendar's (an IANA name, as ``Clock`` answers it), which the command line shows
    times in: every command asks for this list first, so it costs no other question."""

    arguments = []
    response = [
        (b"workers", amp.AmpList([(b"name", amp.Unicode()), (b"region", amp.Unicode()), (b"host", amp.Unicode()),
                                  (b"port", amp.Integer()), (b"load", amp.Integer())])),
        (b"timezone", amp.Unicode(optional=True)),
    ]


# --- client commands (client -> worker, and stamped: worker -> master) ------


class Register(Command):
    arguments = [(b"username", amp.Unicode()), (b"email", amp.Unicode()), (b"password", amp.Unicode())]
    response = _ACCOUNT


class Login(Command):
    """A session for a username and its password.  ``device``: what the client says it is ('Chrome on Linux',
    'papertrader CLI on Linux'), kept with the session (at most 100 printable characters) for the account's
    sessions list; never checked."""

    arguments = [(b"username", amp.Unicode()), (b"password", amp.Unicode()), (b"remember", amp.Boolean()),
                 (b"device", amp.Unicode(optional=True))]
    response = [(b"token", amp.Unicode()), (b"username", amp.Unicode()), (b"expires", amp.DateTime())]


class Logout(Command):
    arguments = [(b"token", amp.Unicode())]
    response = []


class ProviderStart(Command):
    """Begin signing in with an identity provider: the URL to open, the state it carries, and the secret to
    finish with (kept by the client: never in a URL; at most 200 sign-ins in progress per client address)."""

    arguments = [(b"provider", amp.Unicode()), (b"redirect_uri", amp.Unicode())]
    response = [(b"url", amp.Unicode()), (b"state", amp.Unicode()), (b"secret", amp.Unicode())]


class ProviderFinish(Command):
    """Finish it with the code the provider sent to the client's loopback listener (or the website's callback),
    and ProviderStart's secret.

    The answer is a session (token, username, expires) when the identity is linked to an account;
    otherwise a ticket (and a proposed username) for ProviderCreate or ProviderLink.
    """

    arguments = [(b"provider", amp.Unicode()), (b"state", amp.Unicode()), (b"code", amp.Unicode()),
                 (b"secret", amp.Unicode()), (b"remember", amp.Boolean()), (b"device", amp.Unicode(optional=True))]
    response = [(b"token", amp.Unicode(optional=True)), (b"username", amp.Unicode(optional=True)),
                (b"expires", amp.DateTime(optional=True)), (b"ticket", amp.Unicode(optional=True)),
                (b"proposal", amp.Unicode(optional=True))]


class ProviderCreate(Command):
    """Create an account without a password for a ticket's identity."""

    arguments = [(b"ticket", amp.Unicode()), (b"username", amp.Unicode())]
    response = [(b"token", amp.Unicode()), (b"username", amp.Unicode()), (b"expires", amp.DateTime())]


class ProviderLink(Command):
    """Link a ticket's identity to an existing account (its password is required)."""

    arguments = [(b"ticket", amp.Unicode()), (b"username", amp.Unicode()), (b"password", amp.Unicode())]
    response = [(b"token", amp.Unicode()), (b"username", amp.Unicode()), (b"expires", amp.DateTime())]


class SetPassword(Command):
    """Give a password to an account made through a provider (it has none)."""

    arguments = [(b"token", amp.Unicode()), (b"password", amp.Unicode())]
    response = []


class Profile(Command):
    """An account's profile: your own in full; another user's public part only."""

    arguments = [(b"token", amp.Unicode()), (b"username", amp.Unicode(optional=True))]
    response = [
        (b"username", amp.Unicode()),
        (b"joined", amp.DateTime()),
        (b"public_portfolio", amp.Boolean()),
        (b"email", amp.Unicode(optional=True)),
        (b"cash", amp.Decimal(optional=True)),
        (b"sign_in", amp.ListOf(amp.Unicode(), optional=True)),
        (b"positions", amp.AmpList([(b"symbol", amp.Unicode()), (b"quantity", amp.Decimal())], optional=True)),
    ]


class SetProfile(Command):
    """Choose whether other users may see your positions."""

    arguments = [(b"token", amp.Unicode()), (b"public_portfolio", amp.Boolean())]
    response = []


class DeleteAccount(Command):
    """Delete your account's personal data.  Proof: its password, or (an account without one) a fresh
    provider sign-in given as its state, code and secret (ProviderStart's)."""

    arguments = [(b"token", amp.Unicode()), (b"password", amp.Unicode(optional=True)),
                 (b"provider", amp.Unicode(optional=True)), (b"state", amp.Unicode(optional=True)),
                 (b"code", amp.Unicode(optional=True)), (b"secret", amp.Unicode(optional=True))]
    response = []


class Sessions(Command):
    """The account's live sessions (``id`` is a public id, never the token; ``device``: what its client said it
    was when it signed in, as Login's)."""

    arguments = [(b"token", amp.Unicode())]
    response = [
        (
            b"sessions",
            amp.AmpList(
                [
                    (b"id", amp.Unicode()),
                    (b"created", amp.DateTime()),
                    (b"last_used", amp.DateTime()),
                    (b"worker", amp.Unicode()),
                    (b"client_ip", amp.Unicode()),
                    (b"expires", amp.DateTime()),
                    (b"current", amp.Boolean()),
                    (b"device", amp.Unicode(optional=True)),
                ]
            ),
        )
    ]


class EndSession(Command):
    """End one of the account's sessions by its public id."""

    arguments = [(b"token", amp.Unicode()), (b"session_id", amp.Unicode())]
    response = []


class LogoutAll(Command):
    """End every session of the account, the current one included.  ``api_keys``: how many of its API keys
    still work (they are not sessions: revoke them with RevokeApiKey)."""

    arguments = [(b"token", amp.Unicode())]
    response = [(b"sessions_ended", amp.Integer()), (b"api_keys", amp.Integer(optional=True))]


class ChangePassword(Command):
    """Replace the password (the current one is required); every other session of the account ends.
    ``api_keys``: how many of its API keys still work (a new password does not revoke them)."""

    arguments = [(b"token", amp.Unicode()), (b"old_password", amp.Unicode()), (b"new_password", amp.Unicode())]
    response = [(b"sessions_ended", amp.Integer()), (b"api_keys", amp.Integer(optional=True))]


class Whoami(Command):
    arguments = [(b"token", amp.Unicode())]
    response = _ACCOUNT + [(b"expires", amp.DateTime())]


class Assets(Command):
    arguments = []
    response = [(b"quotes", amp.AmpList(_QUOTE))]


class Quote(Command):
    arguments = [(b"symbol", amp.Unicode())]
    response = _QUOTE


class Candles(Command):
    """OHLCV candles of a symbol: ``interval`` 1m, 5m, 15m, 1h or 1d (default: 1d for a replay of whole
    sessions, else 1m); the newest ``limit``, or the first ``limit`` from ``start`` (and before ``end``)."""

    arguments = [(b"symbol", amp.Unicode()), (b"limit", amp.Integer()), (b"interval", amp.Unicode(optional=True)),
                 (b"start", amp.DateTime(optional=True)), (b"end", amp.DateTime(optional=True))]
    response = [
        (
            b"candles",
            amp.AmpList(
                [
                    (b"time", amp.DateTime()),
                    (b"open", amp.Decimal()),
                    (b"high", amp.Decimal()),
                    (b"low", amp.Decimal()),
                    (b"close", amp.Decimal()),
                    (b"volume", amp.Integer()),
                ]
            ),
        ),
        (b"interval", amp.Unicode(optional=True)),
    ]


class PlaceOrder(Command):
    """Place an order.  ``quantity`` or ``notional``; prices and amounts are decimal text.

    ``type``: market (default), limit, stop, stop_limit, trailing_stop.  ``time_in_force``: day (default),
    gtc, ioc, fok, opg, cls.  The same ``client_order_id`` again returns the order it made.
    ``order_class``: simple (default), bracket, oco or oto, with the exits' ``take_profit`` (a limit price),
    ``stop_loss`` (a stop price) and ``stop_loss_limit`` (a stop-loss's limit price, for a stop-limit exit);
    the answer's ``legs`` are the exits (papertrader/trading/contingent.py).
    """

    arguments = [
        (b"token", amp.Unicode()),
        (b"portfolio", amp.Unicode(optional=True)),
        (b"client_order_id", amp.Unicode()),
        (b"side", amp.Unicode()),
        (b"symbol", amp.Unicode()),
        (b"quantity", amp.Unicode(optional=True)),
        (b"notional", amp.Unicode(optional=True)),
        (b"type", amp.Unicode(optional=True)),
        (b"time_in_force", amp.Unicode(optional=True)),
        (b"limit_price", amp.Unicode(optional=True)),
        (b"stop_price", amp.Unicode(optional=True)),
        (b"trail_price", amp.Unicode(optional=True)),
        (b"trail_percent", amp.Unicode(optional=True)),
        (b"order_class", amp.Unicode(optional=True)),
        (b"take_profit", amp.Unicode(optional=True)),
        (b"stop_loss", amp.Unicode(optional=True)),
        (b"stop_loss_limit", amp.Unicode(optional=True)),
    ]
    response = _order_with_legs()


class CancelOrder(Command):
    """Cancel what is left of an open order (by its id or its uuid); the answer is the order (what filled
    before stays filled)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"order_id", amp.Integer(optional=True)),
                 (b"order_uuid", amp.Unicode(optional=True))]
    response = _order_fields()


class CancelAllOrders(Command):
    """Cancel every open order of the account; the answer lists them."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True))]
    response = [(b"orders", amp.AmpList(_order_fields()))]


class ReplaceOrder(Command):
    """Replace an open order by a new one with these changes; the answer is the new order.  ``trail``: a
    trailing stop's new trail, in dollars or percent as the order has it.  The same ``client_order_id`` for the
    same replace again returns the order it made.  An exit of a bracket, OCO or OTO order changes its prices
    only (it keeps its part; an OCO's stop-loss hangs from its new take-profit, listed in ``legs``); an entry
    is not replaced."""

    arguments = [
        (b"token", amp.Unicode()),
        (b"portfolio", amp.Unicode(optional=True)),
        (b"order_id", amp.Integer(optional=True)),
        (b"order_uuid", amp.Unicode(optional=True)),
        (b"client_order_id", amp.Unicode(optional=True)),
        (b"quantity", amp.Unicode(optional=True)),
        (b"limit_price", amp.Unicode(optional=True)),
        (b"stop_price", amp.Unicode(optional=True)),
        (b"trail_price", amp.Unicode(optional=True)),
        (b"trail_percent", amp.Unicode(optional=True)),
        (b"time_in_force", amp.Unicode(optional=True)),
        (b"trail", amp.Unicode(optional=True)),
    ]
    response = _order_with_legs()


class GetOrder(Command):
    """One order by its id (or its client order id), with its fills and how it arrived."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"order_id", amp.Integer(optional=True)),
                 (b"client_order_id", amp.Unicode(optional=True)), (b"order_uuid", amp.Unicode(optional=True))]
    response = _order_with_legs() + [
        (b"fills", amp.AmpList(_FILL)),
        (b"received", amp.DateTime(optional=True)),
        (b"client_ip", amp.Unicode(optional=True)),
        (b"worker", amp.Unicode(optional=True)),
    ]


class Orders(Command):
    """A page of the account's orders, oldest first; ``next_before`` pages further back.  With ``direction``
    asc: the oldest first (from ``after``, or with an id above ``after_id``).  ``generation``: an earlier
    generation's orders (the archive a reset left; 0 is the first).  ``nested``: the exits of bracket, OCO
    and OTO orders in their first part's ``legs`` instead of on their own."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"limit", amp.Integer()), (b"status", amp.Unicode(optional=True)),
                 (b"before", amp.Integer(optional=True)), (b"after", amp.DateTime(optional=True)),
                 (b"until", amp.DateTime(optional=True)), (b"direction", amp.Unicode(optional=True)),
                 (b"symbols", amp.ListOf(amp.Unicode(), optional=True)), (b"side", amp.Unicode(optional=True)),
                 (b"after_id", amp.Integer(optional=True)), (b"generation", amp.Integer(optional=True)),
                 (b"nested", amp.Boolean(optional=True))]
    response = [(b"orders", amp.AmpList(_order_with_legs())), (b"next_before", amp.Integer(optional=True))]


class Portfolio(Command):
    """A portfolio's cash, equity, buying power, positions; for a margin portfolio also its margin figures
    and any open margin call (see the README's margin rules)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True))]
    response = [
        (b"cash", amp.Decimal()),
        (b"equity", amp.Decimal()),
        (b"buying_power", amp.Decimal()),
        (b"realized_pl", amp.Decimal()),
        (b"unrealized_pl", amp.Decimal()),
        (b"change_today", amp.Decimal()),
        (b"open_orders", amp.Integer()),
        (b"account_uuid", amp.Unicode(optional=True)),
        (b"created", amp.DateTime(optional=True)),
        # The market's time when the portfolio was made or last reset (a replay's own; absent: not known, a
        # portfolio made before schema version 22): the HTTP API's account created_at.
        (b"began", amp.DateTime(optional=True)),
        (b"portfolio", amp.Unicode(optional=True)),
        (b"kind", amp.Unicode(optional=True)),
        (b"generation", amp.Integer(optional=True)),
        (b"starting_cash", amp.Decimal(optional=True)),
        (b"long_market_value", amp.Decimal(optional=True)),
        (b"short_market_value", amp.Decimal(optional=True)),
        (b"initial_margin", amp.Decimal(optional=True)),
        (b"maintenance_margin", amp.Decimal(optional=True)),
        (b"margin_call", amp.Decimal(optional=True)),
        (b"margin_call_since", amp.DateTime(optional=True)),
        (b"margin_call_deadline", amp.DateTime(optional=True)),
        # Equity when the day began (change_today is equity less it), and when that day's session opened.
        (b"last_equity", amp.Decimal(optional=True)),
        (b"day_start", amp.DateTime(optional=True)),
        # A game's portfolio: the commission its orders pay, when the game sets its own (as a game's commission
        # is written: per_order:1.00...; the website's order preview counts it).
        (b"commission_model", amp.Unicode(optional=True)),
        # What the owner turned on in the portfolio's configuration (PortfolioConfiguration): no short sales,
        # no new orders (absent: off).
        (b"no_shorting", amp.Boolean(optional=True)),
        (b"suspend_trade", amp.Boolean(optional=True)),
        (
            b"positions",
            amp.AmpList(
                [
                    (b"symbol", amp.Unicode()),
                    (b"quantity", amp.Decimal()),
                    (b"average_price", amp.Decimal()),
                    (b"cost", amp.Decimal()),
                    (b"price", amp.Decimal(optional=True)),
                    (b"market_value", amp.Decimal()),
                    (b"unrealized_pl", amp.Decimal()),
                    (b"unrealized_percent", amp.Decimal(optional=True)),
                    (b"change_today", amp.Decimal(optional=True)),
                    (b"previous_close", amp.Decimal(optional=True)),
                    (b"exchange", amp.Unicode(optional=True)),
                    # What change_today counts from (papertrader/trading/valuation.py).
                    (b"day_base", amp.Decimal(optional=True)),
                    # Shares not kept by open orders (Alpaca's qty_available): of a long position, those no
                    # open sale holds; of a short one (negative), those no open buy covers.
                    (b"available", amp.Decimal(optional=True)),
                ]
            ),
        ),
    ]


class History(Command):
    """A page of the portfolio's transactions (fills, dividends, splits, borrow fees), oldest first;
    ``next_before`` pages further back.  ``generation``: an earlier generation's (the archive a reset left)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"limit", amp.Integer()), (b"before", amp.Integer(optional=True)),
                 (b"generation", amp.Integer(optional=True))]
    response = [
        (
            b"transactions",
            amp.AmpList(
                [
                    (b"id", amp.Integer()),
                    (b"time", amp.DateTime()),
                    (b"kind", amp.Unicode()),
                    (b"order_id", amp.Integer(optional=True)),
                    (b"side", amp.Unicode()),
                    (b"symbol", amp.Unicode()),
                    (b"quantity", amp.Decimal()),
                    (b"price", amp.Decimal()),
                    (b"commission", amp.Decimal()),
                    (b"amount", amp.Decimal()),
                    (b"cash_after", amp.Decimal()),
                    (b"realized_pl", amp.Decimal(optional=True)),
                    (b"model", amp.Unicode(optional=True)),
                    # What a split, a dividend or a borrow fee did ("2-for-1 split: 10 -> 20 shares").
                    (b"details", amp.Unicode(optional=True)),
                ]
            ),
        ),
        (b"next_before", amp.Integer(optional=True)),
    ]


class Clock(Command):
    """The market clock: market time, whether the market is open, the next open and close; ``timezone``: the
    calendar's (an IANA name: its sessions' local times, as the website shows times)."""

    arguments = []
    response = [(b"time", amp.DateTime()), (b"is_open", amp.Boolean()), (b"next_open", amp.DateTime()),
                (b"next_close", amp.DateTime()), (b"calendar", amp.Unicode()), (b"mode", amp.Unicode()),
                (b"state", amp.Unicode()), (b"source", amp.Unicode(optional=True)),
                (b"step", amp.Unicode(optional=True)), (b"start", amp.DateTime(optional=True)),
                (b"end", amp.DateTime(optional=True)), (b"timezone", amp.Unicode(optional=True))]


class MarketControl(Command):
    """A replay's clock moved by an account the operator named in ``market_control`` (as ``papertrader-admin
    market`` does): ``action`` ``status``, ``pause``, ``resume``, ``step`` (``when``: how many updates, 1-260,
    default 1: the replay is paused, then plays exactly that many, each with its trading step, and answers once
    they are done; ``played``: how many did, fewer if the replay reached its end; an ended replay is
    ``invalid_input``) or ``seek`` (``when``: YYYY-MM-DD).  Answers the clock, as ``Clock``.  ``status`` is
    anyone's; the others, of an account ``market_control`` does not name: ``not_permitted``; of a market on the
    wall clock: ``invalid_input``."""

    arguments = [(b"token", amp.Unicode()), (b"action", amp.Unicode()), (b"when", amp.Unicode(optional=True))]
    response = Clock.response + [(b"played", amp.Integer(optional=True))]


class ClosePosition(Command):
    """Sell (all, ``quantity`` or ``percentage`` of) a position at the market; the answer is the order.  With
    ``cancel_orders``, first the open orders of the position on the closing side are canceled (with the other
    parts of their bracket, OCO or OTO orders; not when the close would be refused): ``canceled_orders`` says
    how many."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"symbol", amp.Unicode()), (b"quantity", amp.Unicode(optional=True)),
                 (b"percentage", amp.Unicode(optional=True)), (b"client_order_id", amp.Unicode(optional=True)),
                 (b"cancel_orders", amp.Boolean(optional=True))]
    response = _order_fields() + [(b"canceled_orders", amp.Integer(optional=True))]


class CloseAllPositions(Command):
    """Sell every position at the market (and first cancel the open orders, with ``cancel_orders``: ``canceled``
    says how many)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"cancel_orders", amp.Boolean(optional=True))]
    response = [(b"orders", amp.AmpList(_order_fields())),
                (b"failures", amp.AmpList([(b"symbol", amp.Unicode()), (b"code", amp.Unicode()),
                                           (b"message", amp.Unicode())])),
                (b"canceled", amp.Integer(optional=True))]


class Calendar(Command):
    """The trading sessions between two days (default: from today, 62 days), at most 600 (ask again from the
    day after the last); ``timezone``: the exchange's, which its dates are counted in."""

    arguments = [(b"start", amp.DateTime(optional=True)), (b"end", amp.DateTime(optional=True))]
    response = [(b"sessions", amp.AmpList([(b"date", amp.Unicode()), (b"open", amp.DateTime()),
                                           (b"close", amp.DateTime())])),
                (b"timezone", amp.Unicode(optional=True))]


class AssetList(Command):
    """The traded assets as the source describes them, by symbol: one, with ``symbol``; else at most ``limit``
    (1-200, default 200) of those after the symbol ``after``.  ``status``: ``inactive`` (and not ``tradable``)
    for one of a replay that has no price yet (listed later: its orders are refused; ``first_day``, when its
    prices start), else ``active``."""

    arguments = [(b"symbol", amp.Unicode(optional=True)), (b"after", amp.Unicode(optional=True)),
                 (b"limit", amp.Integer(optional=True))]
    response = [(b"assets", amp.AmpList([
        (b"id", amp.Unicode()), (b"symbol", amp.Unicode()), (b"name", amp.Unicode()),
        (b"exchange", amp.Unicode()), (b"asset_class", amp.Unicode()), (b"tradable", amp.Boolean()),
        (b"fractionable", amp.Boolean()), (b"price", amp.Decimal(optional=True)),
        (b"previous_close", amp.Decimal(optional=True)), (b"marginable", amp.Boolean(optional=True)),
        (b"shortable", amp.Boolean(optional=True)), (b"maintenance_margin", amp.Decimal(optional=True)),
        (b"status", amp.Unicode(optional=True)), (b"first_day", amp.Unicode(optional=True))]))]


class PortfolioHistory(Command):
    """The account's equity over time: ``timeframe`` 1Min, 5Min, 15Min, 1H or 1D over ``period`` (e.g. 1M)
    or from ``start`` to ``end``.  ``base_value``: the equity at the close before the first point (the profit
    and loss count from it), at ``base_time`` (that candle's time; absent if no price is known before the
    period, when the base is the cash the portfolio started with)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"period", amp.Unicode(optional=True)),
                 (b"timeframe", amp.Unicode(optional=True)), (b"start", amp.DateTime(optional=True)),
                 (b"end", amp.DateTime(optional=True))]
    response = [(b"timestamps", amp.ListOf(amp.Integer())), (b"equity", amp.ListOf(amp.Decimal())),
                (b"profit_loss", amp.ListOf(amp.Decimal())), (b"profit_loss_pct", amp.ListOf(amp.Decimal())),
                (b"base_value", amp.Decimal()), (b"timeframe", amp.Unicode()),
                (b"base_time", amp.Integer(optional=True))]


class Activities(Command):
    """The account's activities (fills, dividends, splits), newest first unless ``direction`` is asc; page on
    with ``page_token`` (the last activity's id)."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True)),
                 (b"types", amp.ListOf(amp.Unicode(), optional=True)),
                 (b"after", amp.DateTime(optional=True)), (b"until", amp.DateTime(optional=True)),
                 (b"direction", amp.Unicode(optional=True)), (b"page_size", amp.Integer(optional=True)),
                 (b"page_token", amp.Unicode(optional=True))]
    response = [(b"activities", amp.AmpList([
        (b"id", amp.Unicode()), (b"kind", amp.Unicode()), (b"time", amp.DateTime()), (b"symbol", amp.Unicode()),
        (b"side", amp.Unicode(optional=True)), (b"quantity", amp.Decimal()), (b"price", amp.Decimal()),
        (b"amount", amp.Decimal()), (b"order_uuid", amp.Unicode(optional=True)),
        (b"order_status", amp.Unicode(optional=True)), (b"cum_qty", amp.Decimal(optional=True)),
        (b"leaves_qty", amp.Decimal(optional=True)), (b"details", amp.Unicode(optional=True)),
        (b"commission", amp.Decimal(optional=True)),
        (b"short_sale", amp.Boolean(optional=True))])),  # a fill of a sale that left the position short
        (b"account_uuid", amp.Unicode(optional=True))]


class Bars(Command):
    """OHLCV bars of several symbols (sorted by symbol, then time), at most ``limit`` in all; page on with
    ``page_token``.  ``timeframe``: 1Min, 2Min ... 30Min (minutes that divide an hour), 1Hour, 1Day, 1Week,
    1Month, 2Month, 3Month, 4Month, 6Month, 12Month (papertrader/market/periods.py).  ``adjustment``: raw (the default), split,
    dividend or all (prices and volumes adjusted for the splits and dividends after each bar, up to the market's
    day).  From ``start`` to ``end``, both included; a bar of a day or longer is stamped at midnight of its first
    day in the market's time zone, as Alpaca's.  ``start_day`` and ``end_day`` (YYYY-MM-DD, instead of ``start``
    and ``end``): from the start of that day, through the end of that day, in the market's time zone."""

    arguments = [(b"symbols", amp.ListOf(amp.Unicode())), (b"timeframe", amp.Unicode()),
                 (b"start", amp.DateTime(optional=True)), (b"end", amp.DateTime(optional=True)),
                 (b"start_day", amp.Unicode(optional=True)), (b"end_day", amp.Unicode(optional=True)),
                 (b"limit", amp.Integer(optional=True)), (b"page_token", amp.Unicode(optional=True)),
                 (b"sort", amp.Unicode(optional=True)), (b"adjustment", amp.Unicode(optional=True))]
    response = [(b"bars", amp.AmpList([(b"symbol", amp.Unicode()), (b"time", amp.DateTime()),
                                       (b"open", amp.Decimal()), (b"high", amp.Decimal()), (b"low", amp.Decimal()),
                                       (b"close", amp.Decimal()), (b"volume", amp.Integer())])),
                (b"next_page_token", amp.Unicode(optional=True))]


class CorporateActions(Command):
    """The splits (``forward_split``, ``reverse_split``: ``new_rate`` shares for ``old_rate``) and cash dividends
    (``cash_dividend``: ``rate`` a share, paid on ``pay_date``) of ``symbols`` (1-200; default: every asset of a
    deployment that has at most 500), processed from ``start`` to ``end`` (days YYYY-MM-DD, both included; a
    split on its ``ex_date``, a dividend on its pay date; both default to the market's day), by process date
    (``sort`` desc: newest first), at most ``limit`` (1-200) a page; only those whose ex-date has come (never a
    replay's future); ``kinds``: only those kinds.  ``id``: a stable UUID of the action."""

    arguments = [(b"start", amp.Unicode(optional=True)), (b"end", amp.Unicode(optional=True)),
                 (b"symbols", amp.ListOf(amp.Unicode(), optional=True)),
                 (b"kinds", amp.ListOf(amp.Unicode(), optional=True)), (b"limit", amp.Integer(optional=True)),
                 (b"page_token", amp.Unicode(optional=True)), (b"sort", amp.Unicode(optional=True))]
    response = [(b"actions", amp.AmpList([
        (b"id", amp.Unicode()), (b"kind", amp.Unicode()), (b"symbol", amp.Unicode()), (b"ex_date", amp.Unicode()),
        (b"process_date", amp.Unicode()), (b"pay_date", amp.Unicode(optional=True)),
        (b"rate", amp.Decimal(optional=True)), (b"new_rate", amp.Decimal(optional=True)),
        (b"old_rate", amp.Decimal(optional=True))])),
        (b"next_page_token", amp.Unicode(optional=True))]


class LatestBars(Command):
    """The newest ``count`` (1-10, default 1) bars of each of ``symbols`` (1-200), oldest first per symbol;
    symbols not traded here, or without bars, are left out.  ``timeframe`` as for Bars."""

    arguments = [(b"symbols", amp.ListOf(amp.Unicode())), (b"timeframe", amp.Unicode()),
                 (b"count", amp.Integer(optional=True))]
    response = Bars.response[:1]


class CreateApiKey(Command):
    """A new API key for one of the account's portfolios (``portfolio``: its name; the default portfolio if
    none): its id and its secret (shown this once; only its hash is kept).  The key trades that portfolio."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode(optional=True)),
                 (b"portfolio", amp.Unicode(optional=True))]
    response = [(b"key_id", amp.Unicode()), (b"secret", amp.Unicode()), (b"name", amp.Unicode()),
                (b"created", amp.DateTime()), (b"portfolio", amp.Unicode(optional=True))]


class ApiKeys(Command):
    """The account's API keys (never their secrets), each with the portfolio it trades."""

    arguments = [(b"token", amp.Unicode())]
    response = [(b"keys", amp.AmpList([(b"key_id", amp.Unicode()), (b"name", amp.Unicode()),
                                       (b"created", amp.DateTime()), (b"last_used", amp.DateTime(optional=True)),
                                       (b"portfolio", amp.Unicode(optional=True))]))]


class RevokeApiKey(Command):
    """End an API key of the account."""

    arguments = [(b"token", amp.Unicode()), (b"key_id", amp.Unicode())]
    response = []



# --- games (papertrader/app/games.py) ----------------------------------------

#: A game as every game command shows it.  ``status``: upcoming, open or ended.  ``portfolio``: the name of
#: your portfolio in it (if you play); ``invite_code`` only in the answer that made a new code.
_GAME = [
    (b"name", amp.Unicode()), (b"creator", amp.Unicode()), (b"status", amp.Unicode()),
    (b"start", amp.DateTime()), (b"end", amp.DateTime()), (b"ended_at", amp.DateTime(optional=True)),
    (b"starting_cash", amp.Decimal()), (b"private", amp.Boolean()), (b"players", amp.Integer()),
    (b"commission", amp.Unicode(optional=True)), (b"fill_model", amp.Unicode(optional=True)),
    (b"margin", amp.Boolean()), (b"allow_short", amp.Boolean()), (b"assets", amp.ListOf(amp.Unicode())),
    (b"max_position", amp.Decimal(optional=True)), (b"is_creator", amp.Boolean()), (b"playing", amp.Boolean()),
    (b"portfolio", amp.Unicode(optional=True)), (b"board_updated", amp.DateTime(optional=True)),
    (b"invite_code", amp.Unicode(optional=True)),
    # Whether its players may see each other's portfolios (GamePortfolio); its creator always may.
    (b"show_portfolios", amp.Boolean(optional=True)),
    # ShowGame to its creator: the players removed (at most 500, first removed first; their portfolios stay).
    (b"removed", amp.AmpList([(b"username", amp.Unicode()), (b"removed", amp.DateTime())], optional=True)),
]


class CreateGame(Command):
    """Create a game (you manage it; join it like anyone to play).  Amounts and percents are decimal text;
    ``commission``: zero, per_order:AMOUNT, per_share:RATE[:MIN[:MAX]] or percent:PERCENT (absent: the
    deployment's); ``fill_model``: bar or ideal (absent: the deployment's); ``assets`` empty: every symbol.
    ``show_portfolios``: its players may see each other's portfolios (GamePortfolio; absent: they may not, only
    its creator).  ``days``: which of ``start`` and ``end`` were given as days ('start', 'end'; each sent as its
    midnight UTC, an end as the midnight after its last day): those are the market's days, from their midnight in
    the market's time zone; the others are times, taken as they are (absent, from a client before this: a
    midnight UTC is taken as a day).  A private game's answer carries its first invite code."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"start", amp.DateTime()),
                 (b"end", amp.DateTime()), (b"starting_cash", amp.Unicode()),
                 (b"commission", amp.Unicode(optional=True)), (b"fill_model", amp.Unicode(optional=True)),
                 (b"margin", amp.Boolean(optional=True)), (b"allow_short", amp.Boolean(optional=True)),
                 (b"assets", amp.ListOf(amp.Unicode(), optional=True)),
                 (b"max_position", amp.Unicode(optional=True)), (b"private", amp.Boolean(optional=True)),
                 (b"show_portfolios", amp.Boolean(optional=True)),
                 (b"days", amp.ListOf(amp.Unicode(), optional=True))]
    response = _GAME


class JoinGame(Command):
    """Join a game: a portfolio named like the game is made for you with its starting cash (a margin
    account if the game allows margin).  A private game needs its current invite ``code``."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"code", amp.Unicode(optional=True))]
    response = _GAME


class GameInvite(Command):
    """A new invite code for a private game (its creator only); the old code stops working."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _GAME


class RemoveGamePlayer(Command):
    """Remove a player from a game (its creator only): their open orders in it are canceled, they leave the
    leaderboard, and their portfolio takes no more orders (its history stays readable)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"username", amp.Unicode())]
    response = _GAME


class EndGame(Command):
    """End a game now (its creator only): trading stops; the next update cancels its open orders and
    stores the final ranking."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _GAME


class Games(Command):
    """The games you may see: public ones, yours, and those you play in (newest first, at most 200)."""

    arguments = [(b"token", amp.Unicode())]
    response = [(b"games", amp.AmpList(_GAME))]


class ShowGame(Command):
    """One game you may see (a private game is unknown to anyone outside it)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _GAME


class GameLeaderboard(Command):
    """A game's leaderboard as the last update stored it: ``by`` return (default) or sharpe; ``limit``
    (1-500, default 100) standings from ``offset`` (0).  Usernames only.  ``final``: the game has ended and
    this is its final ranking.  ``unranked``: the players the next update ranks (joined since the last, or
    before the first), by username, at most 500.  ``starts``: when the game starts, while it has not yet (no
    update ranks its players before: the first one after it does)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"by", amp.Unicode(optional=True)),
                 (b"offset", amp.Integer(optional=True)), (b"limit", amp.Integer(optional=True))]
    response = [
        (b"name", amp.Unicode()), (b"by", amp.Unicode()), (b"starting_cash", amp.Decimal()),
        (b"updated", amp.DateTime(optional=True)), (b"final", amp.Boolean()), (b"players", amp.Integer()),
        (b"standings", amp.AmpList([(b"rank", amp.Integer()), (b"username", amp.Unicode()),
                                    (b"equity", amp.Decimal()), (b"return_percent", amp.Decimal()),
                                    (b"sharpe", amp.Decimal(optional=True))])),
        (b"unranked", amp.ListOf(amp.Unicode(), optional=True)),
        (b"starts", amp.DateTime(optional=True)),
    ]


class GameCurve(Command):
    """A player's equity curve in a game: one point per market day (the equity at the day's last update).  Who
    may ask: as for GamePortfolio (a curve and a few public prices tell what the player holds)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"username", amp.Unicode())]
    response = [(b"username", amp.Unicode()),
                (b"points", amp.AmpList([(b"day", amp.Unicode()), (b"equity", amp.Decimal())]))]


#: An order as a player's portfolio shows it to others (GamePortfolio): as every command shows it, without the
#: names its owner gave it or the ids the HTTP API knows it by.
_SHOWN_ORDER = [f for f in _order_fields()
                if f[0] not in (b"uuid", b"client_order_id", b"replaces_uuid", b"replaced_by_uuid")]


class GamePortfolio(Command):
    """A player's portfolio in a game, by their username: what Portfolio shows its owner (cash, equity,
    positions with their quantity, average price, market value and unrealized P&L), its open ``orders``, and
    a page of its history as History pages it: the newest ``limit`` (1-500, default 50) transactions, or those
    before ``before``, oldest first; ``next_before`` pages further back.  ``removed``: when the creator removed
    the player.  Who may ask: the game's creator (every player's portfolio, a removed player's too); its
    players when the game shows portfolios (``show_portfolios``); a player their own.  Anyone else is refused
    with portfolios_hidden whatever the username (and a private game is an unknown_game to outsiders), so
    nobody learns who plays.  Nothing of the account but its username."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"username", amp.Unicode()),
                 (b"limit", amp.Integer(optional=True)), (b"before", amp.Integer(optional=True))]
    response = ([(b"game", amp.Unicode()), (b"username", amp.Unicode()), (b"removed", amp.DateTime(optional=True)),
                 # The game is over: the player's rank and equity in its final ranking, and as of when (the
                 # portfolio's own figures are at the market's prices now, as every portfolio's).
                 (b"final_rank", amp.Integer(optional=True)), (b"final_equity", amp.Decimal(optional=True)),
                 (b"final_as_of", amp.DateTime(optional=True))]
                + [f for f in Portfolio.response if f[0] != b"account_uuid"]
                + [(b"orders", amp.AmpList(_SHOWN_ORDER))] + History.response)
    #: The list ``next_before`` pages (the master fits each list to one AMP value: papertrader/master/protocol.py).
    pages = "transactions"


GAME_COMMANDS = (CreateGame, JoinGame, GameInvite, RemoveGamePlayer, EndGame, Games, ShowGame, GameLeaderboard,
                 GameCurve, GamePortfolio)


# --- portfolios ----------------------------------------------------------------


def _portfolio_fields():
    """A portfolio as the portfolio commands show it (papertrader/app/portfolios.py ``portfolio_view``)."""
    return [
        (b"id", amp.Integer()),
        (b"uuid", amp.Unicode()),
        (b"name", amp.Unicode()),
        (b"kind", amp.Unicode()),
        (b"starting_cash", amp.Decimal()),
        (b"cash", amp.Decimal()),
        (b"default", amp.Boolean()),
        (b"generation", amp.Integer()),
        (b"created", amp.DateTime()),
        (b"began", amp.DateTime(optional=True)),
        (b"closed", amp.DateTime(optional=True)),
        (b"game_id", amp.Integer(optional=True)),
        (b"margin_call", amp.Decimal(optional=True)),
        (b"margin_call_since", amp.DateTime(optional=True)),
        (b"margin_call_deadline", amp.DateTime(optional=True)),
    ]


class Portfolios(Command):
    """The account's portfolios, the default first (``closed``: the closed ones too)."""

    arguments = [(b"token", amp.Unicode()), (b"closed", amp.Boolean(optional=True))]
    response = [(b"portfolios", amp.AmpList(_portfolio_fields()))]


class CreatePortfolio(Command):
    """A new portfolio named ``name`` (1-64 characters, unique in the account without regard to case) with
    ``cash`` (decimal text; the deployment's starting cash if none), a cash account or (``margin``, where the
    operator allows it) a margin account; ``default``: make it the default portfolio."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"cash", amp.Unicode(optional=True)),
                 (b"margin", amp.Boolean(optional=True)), (b"default", amp.Boolean(optional=True))]
    response = _portfolio_fields()


class RenamePortfolio(Command):
    """Rename a portfolio (its orders, history and API keys stay)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()), (b"new_name", amp.Unicode())]
    response = _portfolio_fields()


class SetDefaultPortfolio(Command):
    """Make a portfolio the default one (what commands without a portfolio trade)."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _portfolio_fields()


class ClosePortfolio(Command):
    """Close a portfolio with no open orders and no positions (not the default one); its API keys end.
    Otherwise ``portfolio_not_empty`` says what must be done first."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _portfolio_fields()


class ResetPortfolio(Command):
    """Cancel the portfolio's open orders, archive its history (a new generation) and start it again with
    its starting cash; its name, kind and API keys stay.  ``canceled``: the orders canceled."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode())]
    response = _portfolio_fields() + [(b"canceled", amp.Integer())]


#: A portfolio's configuration (papertrader/trading/configuration.py), as Alpaca's account configurations:
#: ``no_shorting`` (long only), ``suspend_trade`` (no new orders or replacements), ``fractional_trading`` (off:
#: whole shares only, no notional orders) act on orders; ``dtbp_check``, ``pdt_check`` (entry, exit, both),
#: ``trade_confirm_email`` (all, none), ``ptp_no_exception_entry`` and ``max_options_trading_level`` (0-3)
#: are kept as set and change nothing here; ``max_margin_multiplier`` is the portfolio's: 2 margin, 1 cash.
_CONFIGURATION = [
    (b"no_shorting", amp.Boolean()), (b"suspend_trade", amp.Boolean()), (b"fractional_trading", amp.Boolean()),
    (b"dtbp_check", amp.Unicode()), (b"pdt_check", amp.Unicode()), (b"trade_confirm_email", amp.Unicode()),
    (b"ptp_no_exception_entry", amp.Boolean()), (b"max_options_trading_level", amp.Integer()),
    (b"max_margin_multiplier", amp.Unicode()),
]


class PortfolioConfiguration(Command):
    """A portfolio's configuration (``portfolio``: its name; none: the default one, or an API key's own), and
    the portfolio's name."""

    arguments = [(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True))]
    response = _CONFIGURATION + [(b"portfolio", amp.Unicode())]


class ConfigurePortfolio(Command):
    """Change a portfolio's configuration: the settings given (each optional; the others stay); all or nothing
    (``invalid_input`` names the first bad one).  Answers the whole configuration, as PortfolioConfiguration.
    An API key may change its own portfolio's (as Alpaca's)."""

    arguments = ([(b"token", amp.Unicode()), (b"portfolio", amp.Unicode(optional=True))]
                 + [(name, type(argument)(optional=True)) for name, argument in _CONFIGURATION])
    response = PortfolioConfiguration.response


# --- watchlists (papertrader/app/watchlists.py) --------------------------------

#: A watchlist as every watchlist command answers it: its id (a UUID), name (1-64 printable characters, unique
#: in the account), symbols in order (at most 200), when it was made and last changed, and ``account_uuid``: the
#: caller's account id as the HTTP API's /v2/account shows it.
_WATCHLIST = [(b"watchlist_id", amp.Unicode()), (b"name", amp.Unicode()), (b"symbols", amp.ListOf(amp.Unicode())),
              (b"created", amp.DateTime()), (b"updated", amp.DateTime())]
#: Which list a command acts on: its id or its name, one of the two.
_WHICH_WATCHLIST = [(b"watchlist_id", amp.Unicode(optional=True)), (b"watchlist_name", amp.Unicode(optional=True))]


class Watchlists(Command):
    """The account's watchlists, oldest first (the same for every portfolio and API key of the account), each
    with how many symbols it has (``size``), not the symbols themselves (ask ``GetWatchlist``), so that fifty
    full lists fit in one answer."""

    arguments = [(b"token", amp.Unicode())]
    response = [(b"watchlists", amp.AmpList([row for row in _WATCHLIST if row[0] != b"symbols"]
                                            + [(b"size", amp.Integer())])),
                (b"account_uuid", amp.Unicode())]


class CreateWatchlist(Command):
    """A new watchlist named ``name`` with ``symbols`` (any of the deployment's assets; each once, in order). At
    most 50 lists per account."""

    arguments = [(b"token", amp.Unicode()), (b"name", amp.Unicode()),
                 (b"symbols", amp.ListOf(amp.Unicode(), optional=True))]
    response = _WATCHLIST + [(b"account_uuid", amp.Unicode())]


class GetWatchlist(Command):
    """One watchlist, by id or by name."""

    arguments = [(b"token", amp.Unicode())] + _WHICH_WATCHLIST
    response = CreateWatchlist.response


class UpdateWatchlist(Command):
    """Rename a watchlist (``name``) and/or replace its symbols (``symbols``, in their new order; none: empty)."""

    arguments = [(b"token", amp.Unicode())] + _WHICH_WATCHLIST + [
        (b"name", amp.Unicode(optional=True)), (b"symbols", amp.ListOf(amp.Unicode(), optional=True))]
    response = CreateWatchlist.response


class AddToWatchlist(Command):
    """Add ``symbols`` at the end of a watchlist, in one change (a symbol already in it stays where it is;
    an unknown one refuses the whole change)."""

    arguments = [(b"token", amp.Unicode()), (b"symbols", amp.ListOf(amp.Unicode()))] + _WHICH_WATCHLIST
    response = CreateWatchlist.response


class RemoveFromWatchlist(Command):
    """Take ``symbols`` out of a watchlist, in one change (refused, invalid_input, if one is not in it)."""

    arguments = [(b"token", amp.Unicode()), (b"symbols", amp.ListOf(amp.Unicode()))] + _WHICH_WATCHLIST
    response = CreateWatchlist.response


class DeleteWatchlist(Command):
    """Delete a watchlist."""

    arguments = [(b"token", amp.Unicode())] + _WHICH_WATCHLIST
    response = []


WATCHLIST_COMMANDS = (Watchlists, CreateWatchlist, GetWatchlist, UpdateWatchlist, AddToWatchlist,
                      RemoveFromWatchlist, DeleteWatchlist)


#: Client commands a worker passes on to the master (quotes come from its cache).
FORWARDED = (
    Register, Login, ProviderStart, ProviderFinish, ProviderCreate, ProviderLink, SetPassword, Logout, LogoutAll,
    Sessions, EndSession, ChangePassword, Profile, SetProfile, DeleteAccount, Whoami, Candles, Clock, MarketControl,
    PlaceOrder,
    CancelOrder, CancelAllOrders, ReplaceOrder, GetOrder, Orders, Portfolio, History, ClosePosition,
    CloseAllPositions, Calendar, AssetList, PortfolioHistory, Activities, Bars, LatestBars, CorporateActions,
    CreateApiKey, ApiKeys,
    RevokeApiKey, Portfolios, CreatePortfolio, RenamePortfolio, SetDefaultPortfolio, ClosePortfolio,
    ResetPortfolio, PortfolioConfiguration, ConfigurePortfolio,
)

FORWARDED += GAME_COMMANDS + WATCHLIST_COMMANDS

STAMP = [(b"received", amp.DateTime()), (b"client_ip", amp.Unicode()), (b"worker", amp.Unicode())]


#: The commands that may place an order (a sale, a buy): when one was sent to the master and its answer was lost, a
#: worker says ``outcome_unknown`` (it may have been done), not ``master_unavailable`` (which says it was not
#: sent), so that nobody sends it again blindly: a second order.
PLACING = (PlaceOrder, ReplaceOrder, ClosePosition, CloseAllPositions)


def stamped(command):
    """The worker->master twin of a client command, carrying the worker's stamp."""
    return _STAMPED[command]


_STAMPED = {
    command: type(
        "Stamped" + command.__name__,
        (command,),
        {
            "commandName": b"Stamped" + command.__name__.encode("ascii"),
            "arguments": command.arguments + STAMP,
            "__doc__": f"{command.__name__}, as passed on by a worker with its stamp.",
        },
    )
    for command in FORWARDED
}


# --- worker <-> master link --------------------------------------------------


class WorkerHello(Command):
    """A worker introduces itself; the master answers with a fresh challenge."""

    arguments = [
        (b"name", amp.Unicode()),
        (b"host", amp.Unicode()),
        (b"port", amp.Integer()),
        (b"version", amp.Unicode()),
        (b"region", amp.Unicode(optional=True)),
    ]
    response = [(b"challenge", amp.Unicode())]


class WorkerProve(Command):
    """The worker's detached GPG signature of the challenge, ASCII-armored."""

    arguments = [(b"signature", amp.Unicode())]
    response = []


class Authenticate(Command):
    """Worker asks the master whether a session token is valid (for its cache).  ``use`` false: a check made
    for a page left open, not by the person (it does not count as the session's use, so an open page does not
    keep an unused session from ending)."""

    arguments = [(b"token", amp.Unicode()), (b"use", amp.Boolean(optional=True))] + STAMP
    response = [(b"username", amp.Unicode()), (b"expires", amp.DateTime())]


class QuotesTick(Command):
    """Master pushes the newest quotes to every worker after each update (none, if none changed: market time
    still moved).  With ``replace``, they are all the quotes there are, instead of the ones that changed (a
    linked worker's first; market time was moved by a seek or a loop): a symbol not among them has no quote.
    ``market_time``, ``market_open`` and ``market_state`` are the market clock then, as ``Clock`` answers
    ``time``, ``is_open`` and ``state`` (a quote's time is its price's, such as a replayed session's close, not
    the market's).  Also sent with no quotes when an operator pauses or resumes a replay."""

    arguments = [(b"quotes", amp.AmpList(_QUOTE)), (b"replace", amp.Boolean(optional=True)),
                 (b"market_time", amp.DateTime(optional=True)), (b"market_open", amp.Boolean(optional=True)),
                 (b"market_state", amp.Unicode(optional=True))]
    response = []
    requiresAnswer = False


class OrderEvents(Command):
    """Master pushes order events to the workers that have clients watching those accounts."""

    arguments = [(b"events", amp.AmpList([(b"username", amp.Unicode())] + _EVENT +
                                          [(b"order", amp.AmpList(_order_fields()))]))]
    response = []
    requiresAnswer = False


class OrderWatchers(Command):
    """A worker tells the master which accounts its clients watch order events of (``replace``: the whole
    set, as after a new link; else ``add``/``remove`` these)."""

    arguments = [(b"usernames", amp.ListOf(amp.Unicode())), (b"action", amp.Unicode())]
    response = []


class KeyRevoked(Command):
    """Master tells every worker an API key was revoked, or its account disabled (``reason``: what its open
    streams are told, if not that it was revoked); they forget what they cached of it."""

    arguments = [(b"key_id", amp.Unicode()), (b"reason", amp.Unicode(optional=True))]
    response = []
    requiresAnswer = False


class SessionEnded(Command):
    """Master tells every worker a session ended (by the token's hash)."""

    arguments = [(b"token_hash", amp.Unicode())]
    response = []


class MarketStepped(Command):
    """Master tells every worker an update's trading step is done (after its QuotesTick, which comes first so
    that prices show at once): its fills, splits and dividends are in the accounts now.  The website's pages
    that saw a new session in the quotes ask for the day's figures then (asked before, they were the day
    before's: a split's shares valued at its new price)."""

    arguments = [(b"time", amp.DateTime())]
    response = []
    requiresAnswer = False


class GamesChanged(Command):
    """Master tells every worker a game's standings changed (the website's game pages show them again):
    ``name``, the game's, when one game had a player join or leave or was ended by its creator; without it,
    an update ranked (or finished) the games.  ``usernames``: those who joined it, whose portfolios now include
    the game's (their open pages show it in the portfolio menu)."""

    arguments = [(b"name", amp.Unicode(optional=True)), (b"usernames", amp.ListOf(amp.Unicode(), optional=True))]
    response = []
    requiresAnswer = False


class PortfoliosChanged(Command):
    """Master tells every worker a user's portfolios changed: one made, renamed or closed, or another made the
    default (from the website, the command line or the HTTP API).  The website's open pages of ``username`` show
    the navigation's portfolio menu again, as a reload makes it.  ``renamed``: a portfolio's old name and ``name``
    its new one (a page showing it goes on showing it); ``closed``: the name of one closed (a page showing it shows
    the default portfolio, and says so); ``reset``: the name of one reset (its orders canceled, its cash back to the
    start, its history archived: a page showing it is made again).  (A game joined is said by GamesChanged's
    ``usernames``.)"""

    arguments = [(b"username", amp.Unicode()), (b"renamed", amp.Unicode(optional=True)),
                 (b"name", amp.Unicode(optional=True)), (b"closed", amp.Unicode(optional=True)),
                 (b"reset", amp.Unicode(optional=True))]
    response = []
    requiresAnswer = False


class Heartbeat(Command):
    """Master asks each linked worker every heartbeat interval; the answer is its load."""

    arguments = []
    response = [(b"clients", amp.Integer()), (b"sessions", amp.Integer()), (b"commands", amp.Integer())]


class LinkReplaced(Command):
    """Master tells a worker that another connection of the same worker name took its link (a second process
    running with its bundle, or this one reconnecting); the master closes this one then."""

    arguments = [(b"address", amp.Unicode())]
    response = []
    requiresAnswer = False


class Kicked(Command):
    """Master tells a worker it is being disconnected by an operator (it will be refused until allowed)."""

    arguments = [(b"reason", amp.Unicode())]
    response = []
    requiresAnswer = False


_LOG_ENTRY = [(b"time", amp.DateTime()), (b"level", amp.Unicode()), (b"file", amp.Unicode()),
              (b"function", amp.Unicode()), (b"line", amp.Integer()), (b"message", amp.Unicode())]


class WorkerStatus(Command):
    """Master asks a worker for its state and newest in-memory log entries."""

    arguments = [(b"log_entries", amp.Integer())]
    response = [
        (b"region", amp.Unicode()),
        (b"version", amp.Unicode()),
        (b"clients", amp.Integer()),
        (b"sessions", amp.Integer()),
        (b"commands", amp.Integer()),
        (b"watchers", amp.Integer()),
        (b"cached_quotes", amp.Integer()),
        (b"logs", amp.AmpList(_LOG_ENTRY)),
    ]


# --- worker -> client notices and live prices ---------------------------------


class Notice(Command):
    """A worker tells its client something it did not ask: ``code`` is stable, ``message`` for people.

    Codes: ``worker_leaving`` (kicked or shutting down: move to another worker), ``master_unavailable``
    (this worker lost the master), ``slow_consumer`` (live prices were not read fast enough).
    """

    arguments = [(b"code", amp.Unicode()), (b"message", amp.Unicode())]
    response = []
    requiresAnswer = False


class Watch(Command):
    """Client asks for a Tick for each new price of ``symbols`` on this connection."""

    arguments = [(b"symbols", amp.ListOf(amp.Unicode()))]
    response = [(b"symbols", amp.ListOf(amp.Unicode()))]


class WatchOrders(Command):
    """Client asks for an OrderEvent for each event of its account's orders on this connection."""

    arguments = [(b"token", amp.Unicode())]
    response = [(b"username", amp.Unicode())]


class OrderEvent(Command):
    """Worker pushes one order event to a watching client, which answers to keep the flow going."""

    arguments = _EVENT + [(b"order", amp.AmpList(_order_fields()))]
    response = []


class Tick(Command):
    """Worker pushes one new price to a watching client, which answers to keep the flow going."""

    arguments = _QUOTE
    response = []


# --- the master's admin channel (a Unix socket in its data dir) ----------------


#: The market calendar's time zone (an IANA name, as ``ListWorkers`` answers it), with the admin answers that hold
#: times: papertrader-admin shows them in it, as the command line does, at no extra question.
_ADMIN_ZONE = (b"timezone", amp.Unicode(optional=True))


class AdminWorkers(Command):
    """Every registered or connected worker with its state and figures; ``timezone``: the market's."""

    arguments = []
    response = [
        (
            b"workers",
            amp.AmpList(
                [
                    (b"name", amp.Unicode()),
                    (b"state", amp.Unicode()),
                    (b"region", amp.Unicode(optional=True)),
                    (b"host", amp.Unicode(optional=True)),
                    (b"port", amp.Integer(optional=True)),
                    (b"fingerprint", amp.Unicode()),
                    (b"since", amp.DateTime(optional=True)),
                    (b"last_heartbeat", amp.DateTime(optional=True)),
                    (b"clients", amp.Integer(optional=True)),
                    (b"commands_per_second", amp.Decimal(optional=True)),
                    (b"version", amp.Unicode(optional=True)),
                    (b"address", amp.Unicode(optional=True)),
                    # A worker that is not connected: when and why its last attempt was refused, if it was
                    # ('2024-03-08 14:30:00 bad signature (from ...)', its time in UTC); ``refused_at``: that time.
                    (b"refused", amp.Unicode(optional=True)),
                    (b"refused_at", amp.DateTime(optional=True)),
                ]
            ),
        ),
        _ADMIN_ZONE,
    ]


class AdminMarket(Command):
    """The market clock: ``status``; or for a replay ``pause``, ``resume``, ``seek`` (to ``date``, YYYY-MM-DD), or
    ``step`` (``date``: a number of updates, 1-260, default 1: paused, then played one after another, each with its
    trading step; answered once all are done)."""

    arguments = [(b"action", amp.Unicode()), (b"date", amp.Unicode(optional=True))]
    response = Clock.response


class AdminKick(Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"done", amp.Boolean())]


class AdminAllow(Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"done", amp.Boolean())]


class AdminRevoke(Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"done", amp.Boolean())]


class AdminAllowIp(Command):
    """A registered worker's allowed addresses: set to ``allowed`` ("10.0.0.7,10.1.0.0/16"), or to any address with
    ``any``, or (neither) only said.  ``before`` and ``after`` as stored (absent: any address); ``disconnected``: it
    was linked from ``address``, which the new list does not allow, and was cut off."""

    arguments = [(b"name", amp.Unicode()), (b"allowed", amp.Unicode(optional=True)),
                 (b"any", amp.Boolean(optional=True))]
    response = [(b"before", amp.Unicode(optional=True)), (b"after", amp.Unicode(optional=True)),
                (b"disconnected", amp.Boolean()), (b"address", amp.Unicode(optional=True))]


class AdminCreateGame(Command):
    """The operator creates a game on behalf of ``creator`` (a username; the game's manager): CreateGame's
    arguments without the token."""

    arguments = [(b"creator", amp.Unicode())] + [a for a in CreateGame.arguments if a[0] != b"token"]
    response = _GAME + [_ADMIN_ZONE]


class AdminEnrol(Command):
    """The operator joins these users to a game (no invite code needed); ``dry_run``: only check them.
    Usernames without an account are ``unknown``; those already in it (or removed) ``already``; those with a
    portfolio of the game's name ``conflicts`` (they do not join: the game's portfolio takes its name)."""

    arguments = [(b"name", amp.Unicode()), (b"usernames", amp.ListOf(amp.Unicode())),
                 (b"dry_run", amp.Boolean(optional=True))]
    response = [(b"joined", amp.ListOf(amp.Unicode())), (b"unknown", amp.ListOf(amp.Unicode())),
                (b"already", amp.ListOf(amp.Unicode())), (b"conflicts", amp.ListOf(amp.Unicode(), optional=True))]


#: An account as ``papertrader-admin user list`` shows it.
_USER = [
    (b"username", amp.Unicode()),
    (b"email", amp.Unicode()),
    (b"created", amp.DateTime()),
    (b"last_login", amp.DateTime(optional=True)),
    (b"disabled", amp.DateTime(optional=True)),
    (b"disabled_reason", amp.Unicode(optional=True)),
    (b"password", amp.Boolean()),
    (b"portfolios", amp.Integer()),
    (b"sessions", amp.Integer()),
    (b"api_keys", amp.Integer()),
]


class AdminUsers(Command):
    """The operator lists accounts, a page at a time (``after``: the previous page's ``next``), those whose
    username or email holds ``search`` if given."""

    arguments = [(b"search", amp.Unicode(optional=True)), (b"after", amp.Integer(optional=True))]
    response = [(b"users", amp.AmpList(_USER)), (b"next", amp.Integer(optional=True)), _ADMIN_ZONE]


class AdminUser(Command):
    """One account as the operator sees it: the list's fields, how it signs in, its open portfolios, its open
    orders' count and its API keys."""

    arguments = [(b"username", amp.Unicode())]
    response = _USER + [(b"sign_in", amp.ListOf(amp.Unicode())), (b"portfolio_names", amp.ListOf(amp.Unicode())),
                        (b"open_orders", amp.Integer()), (b"keys", amp.ListOf(amp.Unicode())), _ADMIN_ZONE]


class AdminDisableUser(Command):
    """The operator disables an account: no logins, its sessions ended, its API keys refused until enabled."""

    arguments = [(b"username", amp.Unicode()), (b"reason", amp.Unicode(optional=True))]
    response = [(b"username", amp.Unicode()), (b"disabled", amp.DateTime()), (b"already", amp.Boolean()),
                (b"sessions_ended", amp.Integer()), (b"api_keys", amp.Integer()), _ADMIN_ZONE]


class AdminEnableUser(Command):
    """The operator enables a disabled account again."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"username", amp.Unicode()), (b"was_disabled", amp.Boolean())]


class AdminDeleteUser(Command):
    """The operator deletes an account as its owner's delete-account does (personal data removed, sessions
    ended, open orders canceled, API keys revoked; the ledger stays)."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"username", amp.Unicode()), (b"sessions_ended", amp.Integer()),
                (b"orders_canceled", amp.Integer())]


class AdminResetPassword(Command):
    """The operator sets an account's password (registration's rules) and ends its sessions."""

    arguments = [(b"username", amp.Unicode()), (b"password", amp.Unicode())]
    response = [(b"username", amp.Unicode()), (b"sessions_ended", amp.Integer())]
