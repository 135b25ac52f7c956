"""The worker's caches: the newest quotes (pushed by the master) and validated sessions.

Quotes: the master pushes every tick (and a full snapshot when the link is
made), so ``assets`` and ``quote`` cost no round trip; each quote keeps its
own time, so a client can see how fresh it is.

Candles: an answer is kept until the next update reaches the worker (each update adds a candle and
is pushed with the quotes), so repeated chart requests between updates cost the master nothing.

Sessions: a token the master has validated is remembered (by its SHA-256)
until it expires, at most ``ttl`` seconds, or until the master says it
ended (logout), whichever comes first; ``on_forget`` hears of each end.
"""

import collections
import hashlib
from dataclasses import dataclass
from datetime import datetime

from papertrader import commands
from papertrader.worker.fanout import Prepared


@dataclass(frozen=True)
class CachedSession:
    username: str
    expires: datetime
    checked: float
    #: The API key's id, for an API key's credential (the master says when a key is revoked).
    key_id: str = None


class QuoteCache:
    def __init__(self):
        self._quotes = {}
        #: Each quote's answer to ``Quote`` as AMP bytes, made at its first request after each update.
        self._answers = {}
        #: The market clock at the newest update, ``{"time", "is_open"}`` as ``Clock`` answers them (None until
        #: the master said it).
        self.market = None
        #: Called with ``market`` after each update that said it (the website's pages show it in their header).
        self.on_market = []

    def update(self, quotes, replace=False, market=None):
        """Take the master's quotes as they come: it pushes them in order on one connection (and a replay
        moved back in time sends older ones that are nevertheless the newest); with ``replace`` they are all
        there are.  ``market``: the market clock then."""
        if replace:
            self._quotes, self._answers = {}, {}
        for quote in quotes:
            self._quotes[quote["symbol"]] = {k: v for k, v in quote.items() if v is not None}
            self._answers.pop(quote["symbol"], None)
        if market is not None:
            self.market = market
            for notify in list(self.on_market):
                notify(market)

    def get(self, symbol):
        return self._quotes.get(symbol)

    def answer(self, symbol):
        """The ``Quote`` answer of ``symbol`` serialized once per update (bytes), or None if there is no quote
        of it (at most one entry per quote held)."""
        answer = self._answers.get(symbol)
        if answer is None:
            quote = self._quotes.get(symbol)
            if quote is None:
                return None
            answer = self._answers[symbol] = Prepared.bytes_of(commands.Quote.makeResponse(quote, None))
        return answer

    def all(self):
        return [self._quotes[s] for s in sorted(self._quotes)]


class CandleCache:
    """Candles answers by (symbol, limit), valid until the next update (which adds a candle).

    At most ``size`` answers holding at most ``max_candles`` candles in all (an answer holds up to 1,000, so
    the count of answers alone allowed a million): when one more would go over either, the cache starts
    again empty; an answer larger than ``max_candles`` is not kept (0 keeps none).
    """

    def __init__(self, size=1000, max_candles=100_000):
        self.size = size
        self.max_candles = max_candles
        self._answers = {}
        self.candles = 0
        self.hits = 0

    def get(self, key):
        answer = self._answers.get(key)
        if answer is not None:
            self.hits += 1
        return answer

    def put(self, key, answer):
        count = len(answer.get("candles", ())) if isinstance(answer, dict) else 1
        if count > self.max_candles:
            return
        if len(self._answers) >= self.size or self.candles + count > self.max_candles:
            self.clear()
        old = self._answers.pop(key, None)
        if old is not None:
            self.candles -= len(old.get("candles", ())) if isinstance(old, dict) else 1
        self._answers[key] = answer
        self.candles += count

    def clear(self):
        self._answers.clear()
        self.candles = 0

    def __len__(self):
        return len(self._answers)


#: Ends of sessions remembered by hash (see SessionCache.ended_since).
ENDED_KEPT = 10_000


class SessionCache:
    def __init__(self, clock, ttl=60.0, size=100_000):
        self.clock = clock
        self.ttl = ttl
        self._sessions = collections.OrderedDict()
        self.size = size
        #: Called with a token's hash when that session ends (the master said so, or a command found it
        #: ended): the website sends its pages back to sign-in.
        self.on_forget = []
        #: Ends heard so far, and the newest ones by hash (bounded): an answer asked of the master before an end
        #: was heard must not bring that session back (``ended_since``).
        self.forgets = 0
        self._ended = collections.OrderedDict()

    @staticmethod
    def key(token):
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def get(self, token):
        key = self.key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock.seconds()
        if now - session.checked > self.ttl or session.expires.timestamp() <= now:
            del self._sessions[key]
            return None
        return session

    def put(self, token, username, expires):
        key = self.key(token)
        key_id = token.split(":")[1] if token.startswith("apikey:") and token.count(":") >= 2 else None
        self._sessions[key] = CachedSession(username, expires, self.clock.seconds(), key_id)
        self._sessions.move_to_end(key)
        while len(self._sessions) > self.size:
            self._sessions.popitem(last=False)

    def forget(self, token_hash):
        self.forgets += 1
        self._ended[token_hash] = self.forgets
        self._ended.move_to_end(token_hash)
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        self._sessions.pop(token_hash, None)
        for notify in list(self.on_forget):
            notify(token_hash)

    def ended_since(self, token, mark):
        """Whether the session of ``token`` was heard to end after ``mark`` (a value of ``forgets``)."""
        heard = self._ended.get(self.key(token))
        return heard is not None and heard > mark

    def forget_key(self, key_id):
        """Forget every credential of a revoked API key."""
        for key in [k for k, s in self._sessions.items() if s.key_id == key_id]:
            del self._sessions[key]

    def clear(self):
        """Forget every session (after the link to the master was down: ends and revocations may have been
        missed)."""
        self._sessions.clear()

    def __len__(self):
        return len(self._sessions)

    def entries(self):
        return list(self._sessions.values())
