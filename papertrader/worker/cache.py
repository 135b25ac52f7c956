"""The worker's caches: the newest quotes (pushed by the master) and validated sessions.

Quotes: the master pushes every tick (and a full snapshot when the link is
made), so ``assets`` and ``quote`` cost no round trip; each quote keeps its
own time, so a client can see how fresh it is.

Sessions: a token the master has validated is remembered (by its SHA-256)
until it expires, at most ``ttl`` seconds, or until the master says it
ended (logout), whichever comes first.
"""

import collections
import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CachedSession:
    username: str
    expires: datetime
    checked: float


class QuoteCache:
    def __init__(self):
        self._quotes = {}

    def update(self, quotes):
        for quote in quotes:
            current = self._quotes.get(quote["symbol"])
            if current is None or current["time"] <= quote["time"]:
                self._quotes[quote["symbol"]] = dict(quote)

    def get(self, symbol):
        return self._quotes.get(symbol)

    def all(self):
        return [self._quotes[s] for s in sorted(self._quotes)]


class SessionCache:
    def __init__(self, clock, ttl=60.0, size=100_000):
        self.clock = clock
        self.ttl = ttl
        self._sessions = collections.OrderedDict()
        self.size = size

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
        self._sessions[key] = CachedSession(username, expires, self.clock.seconds())
        self._sessions.move_to_end(key)
        while len(self._sessions) > self.size:
            self._sessions.popitem(last=False)

    def forget(self, token_hash):
        self._sessions.pop(token_hash, None)

    def __len__(self):
        return len(self._sessions)

    def entries(self):
        return list(self._sessions.values())
