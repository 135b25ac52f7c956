"""The application layer: one set of rules for every transport.

Each client command a worker passes on (AMP today, HTTP next) becomes one call
``Application.handle(name, stamp, arguments)``: it finds the method named for
the command (``PlaceOrder`` -> ``place_order``), authenticates the session
once if the method needs one, calls it, and returns plain values (dicts of
Decimals, datetimes, strings, lists).  The methods live in :mod:`.accounts`,
:mod:`.trading` and :mod:`.market_data`; they call the trading core and the
stores.  No AMP or HTTP type appears here.
"""

import functools
import re
from dataclasses import dataclass
from datetime import datetime

from twisted.internet import defer

from papertrader.errors import InvalidInput, NotPermitted


@dataclass(frozen=True)
class Stamp:
    """What the worker stamped on a command: when it received it, from which address, through which worker."""

    received: datetime
    client_ip: str
    worker: str


def authenticated(method):
    """Mark an application method as needing a live session: ``handle`` passes it ``session``, not ``token``."""
    method.needs_session = True
    return method


def api_keys_too(method):
    """Mark an ``authenticated`` method an API key may call too.  A key acts for one portfolio of its account:
    ``handle`` refuses it every other method (the account's password, sessions, keys, profile, portfolios and
    games are its owner's), whichever transport the key came by; ``in_portfolio`` methods are marked."""
    method.api_keys_too = True
    return method


def in_portfolio(method):
    """An application method that trades one portfolio: like ``authenticated``, and it takes the command's
    ``portfolio`` argument (a name; None: the default portfolio, or an API key's own portfolio) and runs with
    a session whose ``portfolio_id``/``portfolio`` are that portfolio (``self.session_now`` finds it).  A
    session that already has its portfolio (one method calling another) keeps it."""

    @functools.wraps(method)
    def trading(self, session, stamp, *args, portfolio=None, **kwargs):
        if session.portfolio is None or portfolio not in (None, ""):
            try:
                session = self.session_now(session, portfolio)  # mostly answered from memory, at once
            except Exception:
                return defer.fail()
            if isinstance(session, defer.Deferred):
                return session.addCallback(lambda found: method(self, found, stamp, *args, **kwargs))
        return defer.maybeDeferred(method, self, session, stamp, *args, **kwargs)

    trading.needs_session = True
    trading.api_keys_too = True  # an API key trades its own portfolio (PortfolioCommands.session_in)
    return trading


def method_name(command_name):
    """The application method that answers a command: PlaceOrder -> place_order."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", command_name).lower()


class Application:
    """Routes each command to the part that handles it: accounts, trading or market data."""

    def __init__(self, accounts, parts):
        self.accounts = accounts
        self._handlers = {}
        for part in parts:
            for name in dir(type(part)):
                if not name.startswith("_") and callable(getattr(type(part), name)):
                    self._handlers.setdefault(name, getattr(part, name))

    def handler(self, command_name):
        return self._handlers.get(method_name(command_name))

    @defer.inlineCallbacks
    def handle(self, command_name, stamp, arguments):
        """Run the command named ``command_name`` with ``arguments`` (a dict) under ``stamp``."""
        method = self.handler(command_name)
        if method is None:
            raise InvalidInput(f"unknown command {command_name[:40]!r}")
        arguments = dict(arguments)
        if getattr(method, "needs_session", False):
            session = yield self.accounts.authenticate(arguments.pop("token"))
            if session.api_key is not None and not getattr(method, "api_keys_too", False):
                raise NotPermitted("an API key trades and reads its own portfolio only: sign in as yourself"
                                   " (papertrader login) for that")
            result = yield method(session, stamp, **arguments)
        else:
            result = yield method(stamp, **arguments)
        return result
