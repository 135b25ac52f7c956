"""The master's AMP protocol: what workers (and, for the worker list, clients) may ask.

A connection starts anonymous: it may only ask for the worker list or start
the worker handshake (WorkerHello -> challenge, WorkerProve -> signature).
Everything else needs a linked worker; an anonymous peer gets WorkerRefused
and no data.
"""

import functools
import secrets

from twisted.internet import defer, protocol
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.commands import stamped
from papertrader.errors import PaperTraderError, ProviderLoginFailed, ServerError, UnknownOrder, WorkerRefused
from papertrader.master import validation

MAX_NAME = 64
#: Seconds an anonymous connection may stay open without becoming a linked worker.
ANONYMOUS_TIMEOUT = 60


def guarded(method):
    """Turn any unexpected failure into a logged ServerError: never a traceback to a peer."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        d = defer.maybeDeferred(method, self, *args, **kwargs)

        def failed(failure):
            if failure.check(PaperTraderError):
                return failure
            self.master.log.failure("{command} failed", failure, command=method.__name__)
            raise ServerError()

        return d.addErrback(failed)

    return wrapper


def worker_only(method):
    """Refuse unless this connection is a linked worker; count its commands."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        linked = self.master.workers.linked.get(self.worker) if self.worker is not None else None
        if linked is None or linked.protocol is not self:
            # Never linked, or dropped since (kicked, revoked, marked down, replaced).
            self.master.log.warn("refused {command} from unauthenticated peer {peer}",
                                 command=method.__name__, peer=self.peer())
            raise WorkerRefused("this connection is not an authenticated worker")
        linked.commands += 1
        return method(self, *args, **kwargs)

    return guarded(wrapper)


class MasterProtocol(amp.AMP):
    def __init__(self, master):
        super().__init__()
        self.master = master
        self.worker = None
        self._pending = None
        self.connected = False
        self._anonymous = None
        #: Fires when the connection is gone (the master waits for it when it stops).
        self.lost = defer.Deferred()

    def connectionMade(self):
        super().connectionMade()
        self.connected = True
        self.master.connections.add(self)
        tls.no_delay(self.transport)
        from twisted.internet import reactor

        self._anonymous = reactor.callLater(ANONYMOUS_TIMEOUT, self._expire_anonymous)

    def _expire_anonymous(self):
        if self.worker is None and self.transport is not None:
            self.transport.abortConnection()

    def peer(self):
        peer = self.transport.getPeer() if self.transport else None
        return getattr(peer, "host", "?")

    def connectionLost(self, reason):
        self.connected = False
        if self._anonymous is not None and self._anonymous.active():
            self._anonymous.cancel()
        super().connectionLost(reason)
        if self.worker is not None:
            self.master.workers.unlink(self.worker, self)
        self.master.connections.discard(self)
        self.lost.callback(None)

    # --- anyone -------------------------------------------------------------

    @commands.ListWorkers.responder
    def list_workers(self):
        return {"workers": self.master.workers.listing()}

    @commands.WorkerHello.responder
    @guarded
    @defer.inlineCallbacks
    def hello(self, name, host, port, version, region=None):
        name = name[:MAX_NAME]
        registration = yield self.master.workers.admit(name, self.peer())
        if not host or len(host) > 255 or not 0 < port < 65536:
            raise WorkerRefused("worker announced an invalid public address")
        challenge = f"papertrader-worker-challenge:{name}:{secrets.token_hex(32)}"
        self._pending = (name, (region or "default")[:64], host, port, version[:32], registration["fingerprint"],
                         challenge)
        return {"challenge": challenge}

    @commands.WorkerProve.responder
    @guarded
    @defer.inlineCallbacks
    def prove(self, signature):
        pending, self._pending = self._pending, None  # a challenge is good for one answer
        if pending is None:
            raise WorkerRefused("no challenge was issued on this connection")
        name, region, host, port, version, fingerprint, challenge = pending
        ok = yield self.master.workers.verify(challenge, signature, fingerprint)
        if not ok:
            self.master.workers.refused(name, self.peer())
            self.master.log.warn("refused worker {name!r} from {peer}: bad signature", name=name, peer=self.peer())
            raise WorkerRefused(f"the signature does not match worker {name!r}'s registered key")
        # The registration may have changed while gpg was verifying (a kick, a revoke), or the
        # worker may be gone: never link a closed connection.
        yield self.master.workers.admit(name, self.peer())
        if not self.connected:
            raise WorkerRefused("the connection closed during the handshake")
        self.master.workers.link(name, region, host, port, version, self.peer(), self)
        self.worker = name
        if self._anonymous.active():
            self._anonymous.cancel()
        self.master.send_snapshot(self)
        return {}

    # --- linked workers only ------------------------------------------------

    def _check_stamp(self, worker):
        if worker != self.worker:
            self.master.log.warn("worker {name} stamped a command as {claimed!r}", name=self.worker, claimed=worker)

    @stamped(commands.Register).responder
    @worker_only
    @defer.inlineCallbacks
    def register(self, username, email, password, received, client_ip, worker):
        self._check_stamp(worker)
        account = yield self.master.accounts.register(username, email, password, client_ip[:64])
        return {"username": account.username, "email": account.email, "cash": account.cash}

    @stamped(commands.Login).responder
    @worker_only
    @defer.inlineCallbacks
    def login(self, username, password, remember, received, client_ip, worker):
        self._check_stamp(worker)
        token, name, expires = yield self.master.accounts.login(username, password, remember, self.worker,
                                                                client_ip[:64])
        return {"token": token, "username": name, "expires": expires}

    @commands.Authenticate.responder
    @worker_only
    @defer.inlineCallbacks
    def authenticate(self, token, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        return {"username": session.username, "expires": session.expires}

    @stamped(commands.Logout).responder
    @worker_only
    @defer.inlineCallbacks
    def logout(self, token, received, client_ip, worker):
        yield self.master.accounts.logout(token)
        return {}

    def _provider(self, name):
        provider = self.master.provider
        if provider is None or name != provider.name:
            raise ProviderLoginFailed(f"no identity provider {name[:32]!r} is set up on this deployment")
        return provider

    @stamped(commands.ProviderStart).responder
    @worker_only
    @defer.inlineCallbacks
    def provider_start(self, provider, redirect_uri, received, client_ip, worker):
        url, state = yield self._provider(provider).start(redirect_uri)
        return {"url": url, "state": state}

    @stamped(commands.ProviderFinish).responder
    @worker_only
    @defer.inlineCallbacks
    def provider_finish(self, provider, state, code, remember, received, client_ip, worker):
        if len(state) > 100 or len(code) > 4096:
            raise ProviderLoginFailed("this sign-in is unknown or has expired; start again")
        identity = yield self._provider(provider).finish(state, code)
        answer = yield self.master.accounts.identity_login(identity, remember, self.worker, client_ip[:64])
        return answer

    @stamped(commands.ProviderCreate).responder
    @worker_only
    @defer.inlineCallbacks
    def provider_create(self, ticket, username, received, client_ip, worker):
        token, name, expires = yield self.master.accounts.create_from_identity(ticket, username, self.worker,
                                                                             client_ip[:64])
        return {"token": token, "username": name, "expires": expires}

    @stamped(commands.ProviderLink).responder
    @worker_only
    @defer.inlineCallbacks
    def provider_link(self, ticket, username, password, received, client_ip, worker):
        token, name, expires = yield self.master.accounts.link_identity(ticket, username, password, self.worker,
                                                                      client_ip[:64])
        return {"token": token, "username": name, "expires": expires}

    @stamped(commands.SetPassword).responder
    @worker_only
    @defer.inlineCallbacks
    def set_password(self, token, password, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        yield self.master.accounts.set_password(session, password)
        return {}

    @stamped(commands.Profile).responder
    @worker_only
    @defer.inlineCallbacks
    def profile(self, token, received, client_ip, worker, username=None):
        session = yield self.master.accounts.authenticate(token)
        profile = yield self.master.accounts.profile(session, username)
        return profile

    @stamped(commands.SetProfile).responder
    @worker_only
    @defer.inlineCallbacks
    def set_profile(self, token, public_portfolio, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        yield self.master.accounts.set_public(session, public_portfolio)
        return {}

    @stamped(commands.DeleteAccount).responder
    @worker_only
    @defer.inlineCallbacks
    def delete_account(self, token, received, client_ip, worker, password=None, provider=None, state=None,
                       code=None):
        session = yield self.master.accounts.authenticate(token)
        identity = None
        if provider and state and code and len(state) <= 100 and len(code) <= 4096:
            identity = yield self._provider(provider).finish(state, code)
        yield self.master.accounts.delete(session, password, identity)
        return {}

    @stamped(commands.Sessions).responder
    @worker_only
    @defer.inlineCallbacks
    def sessions(self, token, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        sessions = yield self.master.accounts.sessions(session)
        return {"sessions": commands.fit(commands.Sessions, "sessions", sessions[-commands.MAX_LIST:])}

    @stamped(commands.EndSession).responder
    @worker_only
    @defer.inlineCallbacks
    def end_session(self, token, session_id, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        yield self.master.accounts.end_session(session, session_id[:32])
        return {}

    @stamped(commands.LogoutAll).responder
    @worker_only
    @defer.inlineCallbacks
    def logout_all(self, token, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        ended = yield self.master.accounts.logout_all(session)
        return {"sessions_ended": ended}

    @stamped(commands.ChangePassword).responder
    @worker_only
    @defer.inlineCallbacks
    def change_password(self, token, old_password, new_password, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        ended = yield self.master.accounts.change_password(session, old_password, new_password)
        return {"sessions_ended": ended}

    @stamped(commands.Whoami).responder
    @worker_only
    @defer.inlineCallbacks
    def whoami(self, token, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        account = yield self.master.accounts.account(session.account_id)
        return {"username": account.username, "email": account.email, "cash": account.cash,
                "expires": session.expires}

    @stamped(commands.Candles).responder
    @worker_only
    @defer.inlineCallbacks
    def candles(self, symbol, limit, received, client_ip, worker):
        symbol = validation.symbol(symbol, self.master.board.assets)
        validation.limit(limit, commands.MAX_LIST)
        candles = yield self.master.market.candles(symbol, limit)
        return {"candles": commands.fit(commands.Candles, "candles", candles)}

    @stamped(commands.PlaceOrder).responder
    @worker_only
    @defer.inlineCallbacks
    def place_order(self, token, client_order_id, side, symbol, quantity, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        order = yield self.master.orders.submit(session, client_order_id, side, symbol, quantity,
                                                received, client_ip, self.worker)
        return order

    @stamped(commands.GetOrder).responder
    @worker_only
    @defer.inlineCallbacks
    def get_order(self, token, order_id, received, client_ip, worker):
        if not 0 < order_id < 2**62:
            raise UnknownOrder(f"no order {order_id} on your account")
        session = yield self.master.accounts.authenticate(token)
        order = yield self.master.orders.get(session, order_id)
        return order

    @stamped(commands.Orders).responder
    @worker_only
    @defer.inlineCallbacks
    def orders(self, token, limit, received, client_ip, worker):
        validation.limit(limit, commands.MAX_LIST)
        session = yield self.master.accounts.authenticate(token)
        orders = yield self.master.orders.list(session, limit)
        return {"orders": commands.fit(commands.Orders, "orders", orders)}

    @stamped(commands.Portfolio).responder
    @worker_only
    @defer.inlineCallbacks
    def portfolio(self, token, received, client_ip, worker):
        session = yield self.master.accounts.authenticate(token)
        portfolio = yield self.master.orders.portfolio(session)
        return portfolio

    @stamped(commands.History).responder
    @worker_only
    @defer.inlineCallbacks
    def history(self, token, limit, received, client_ip, worker):
        validation.limit(limit, commands.MAX_LIST)
        session = yield self.master.accounts.authenticate(token)
        transactions = yield self.master.orders.history(session, limit)
        return {"transactions": commands.fit(commands.History, "transactions", transactions)}


class MasterFactory(protocol.Factory):
    def __init__(self, master):
        self.master = master

    def buildProtocol(self, addr):
        return MasterProtocol(self.master)
