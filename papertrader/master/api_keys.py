"""API keys: how programs (the HTTP API, alpaca-py strategies) act for an account, on one of its portfolios.

Each key belongs to one portfolio (``api_keys.portfolio_id``; the default portfolio unless another is
named at creation): every command sent with it trades that portfolio.

A key has a public id (``PK`` and 18 upper-case letters and digits, as Alpaca's) and a secret
(256 random bits, shown once at creation); the database keeps only the secret's SHA-256.  A
request carries both; the application sees them as one credential string,
``apikey:KEY_ID:SECRET``, in the place of a session token, so every command works with either.

Each key may make at most ``api_rate_limit`` requests a minute (counted here, on the master,
whatever worker they come through); more are refused with ``throttled`` (HTTP 429).  Keys end
when revoked, and with the account's deletion; while the operator has the account disabled they are refused
(``account_disabled``, HTTP 403) and work again once it is enabled.
"""

import hashlib
import hmac
import re
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from twisted.internet import defer

from papertrader.errors import AccountDisabled, InvalidInput, NotLoggedIn, Throttled
from papertrader.times import iso, parse_iso

PREFIX = "apikey:"
KEY_ID_RE = re.compile(r"^PK[A-Z0-9]{18}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_\-]{40,128}$")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Active keys one account may have.
MAX_KEYS = 20
MAX_NAME = 64
NEVER = datetime(9999, 12, 31, tzinfo=timezone.utc)


def credential(key_id, secret):
    """The credential string the application takes in the place of a session token."""
    return f"{PREFIX}{key_id}:{secret}"


def is_credential(token):
    return isinstance(token, str) and token.startswith(PREFIX)


def split_credential(token):
    """(key_id, secret) of a well-formed credential; NotLoggedIn otherwise."""
    parts = token[len(PREFIX):].split(":", 1)
    if len(parts) != 2 or not KEY_ID_RE.fullmatch(parts[0]) or not SECRET_RE.fullmatch(parts[1]):
        raise NotLoggedIn("unknown or malformed API key")
    return parts[0], parts[1]


def secret_hash(secret):
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass
class KeyEntry:
    key_id: str
    account_id: int
    username: str
    secret_hash: str
    last_used: datetime = None
    portfolio_id: int = None


class ApiKeys:
    def __init__(self, db, clock, log, rate_limit=200):
        self.db = db
        self.clock = clock
        self.log = log
        self.rate_limit = rate_limit
        self._entries = {}  # key id -> KeyEntry (valid keys only)
        self._recent = {}  # key id -> deque of request times in the last minute
        #: Called with a key id when a key is revoked (the master tells the workers).
        self.on_revoked = []
        self._forgets = 0

    def now(self):
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # --- a user's keys -------------------------------------------------------------------

    @defer.inlineCallbacks
    def create(self, session, name, portfolio=None):
        """A new key of the account's portfolio named ``portfolio`` (its default portfolio if None)."""
        from papertrader.master.portfolios import PortfolioStore

        name = (name or "").strip() or "API key"
        if len(name) > MAX_NAME or any(not ch.isprintable() for ch in name):
            raise InvalidInput(f"a key's name is at most {MAX_NAME} printable characters")
        if session.api_key is not None:
            owner = session.portfolio_id
        else:
            owner = (yield self.db.run(PortfolioStore(self.db).resolve, session.account_id, portfolio)).id
        if (yield self.working(session.account_id)) >= MAX_KEYS:
            raise InvalidInput(f"you already have {MAX_KEYS} API keys; revoke one first")
        key_id = "PK" + "".join(secrets.choice(ALPHABET) for _ in range(18))
        secret = secrets.token_urlsafe(30)  # 240 bits, 40 characters
        created = self.now()
        yield self.db.execute(
            "INSERT INTO api_keys (key_id, portfolio_id, name, secret_hash, created) VALUES (?, ?, ?, ?, ?)",
            (key_id, owner, name, secret_hash(secret), iso(created)))
        self.log.info("{username} created API key {key} ({name})", username=session.username, key=key_id,
                      name=name)
        rows = yield self.db.query("SELECT name FROM portfolios WHERE id = ?", (owner,))
        return dict(key_id=key_id, secret=secret, name=name, created=created, portfolio=rows[0][0])

    @defer.inlineCallbacks
    def working(self, account_id):
        """How many of the account's API keys work (not revoked): a password changed, or every session ended,
        leaves them working."""
        rows = yield self.db.query("SELECT COUNT(*) FROM api_keys k JOIN portfolios p ON p.id = k.portfolio_id"
                                   " WHERE p.account_id = ? AND k.revoked IS NULL", (account_id,))
        return rows[0][0]

    @defer.inlineCallbacks
    def list(self, session):
        rows = yield self.db.query(
            "SELECT k.key_id, k.name, k.created, k.last_used, p.name FROM api_keys k JOIN portfolios p"
            " ON p.id = k.portfolio_id WHERE p.account_id = ? AND k.revoked IS NULL ORDER BY k.created",
            (session.account_id,))
        return [{k: v for k, v in dict(key_id=r[0], name=r[1], created=parse_iso(r[2]),
                                       last_used=parse_iso(r[3]) if r[3] else None, portfolio=r[4]).items()
                 if v is not None}
                for r in rows]

    @defer.inlineCallbacks
    def revoke(self, session, key_id):
        rows = yield self.db.query("SELECT k.revoked FROM api_keys k JOIN portfolios p ON p.id = k.portfolio_id"
                                   " WHERE k.key_id = ? AND p.account_id = ?", ((key_id or "")[:32], session.account_id))
        if not rows:
            raise InvalidInput(f"no API key {key_id[:32]!r} on your account")
        if rows[0][0] is not None:
            raise InvalidInput(f"API key {key_id[:32]!r} is already revoked (since {rows[0][0][:10]})")
        yield self.db.execute("UPDATE api_keys SET revoked = ? WHERE key_id = ? AND revoked IS NULL",
                              (iso(self.now()), key_id))
        self.forget(key_id)
        self.log.info("{username} revoked API key {key}", username=session.username, key=key_id)

    def forget(self, key_id, reason=None):
        """Forget what is cached of a key, here and on every worker (``reason``: why its streams close, if not
        because it was revoked)."""
        self._forgets += 1  # a lookup under way must not cache what it read before this
        self._entries.pop(key_id, None)
        for notify in self.on_revoked:
            notify(key_id, reason)

    @defer.inlineCallbacks
    def revoke_all(self, account_id, cursor_run=None):
        """End every key of an account (its deletion)."""
        mine = "portfolio_id IN (SELECT id FROM portfolios WHERE account_id = ?)"
        rows = yield self.db.query(f"SELECT key_id FROM api_keys WHERE {mine} AND revoked IS NULL", (account_id,))
        yield self.db.execute(f"UPDATE api_keys SET revoked = ? WHERE {mine} AND revoked IS NULL",
                              (iso(self.now()), account_id))
        for (key_id,) in rows:
            self.forget(key_id)

    @defer.inlineCallbacks
    def forget_account(self, account_id):
        """Forget what the master and the workers cached of the account's keys (the operator disabled it: its
        keys' next requests are checked against the database again, and refused).  Fires with their count."""
        rows = yield self.db.query("SELECT key_id FROM api_keys WHERE portfolio_id IN (SELECT id FROM portfolios"
                                   " WHERE account_id = ?) AND revoked IS NULL", (account_id,))
        for (key_id,) in rows:
            self.forget(key_id, "the account of this API key has been disabled by the operator")
        return len(rows)

    # --- authenticating a request -----------------------------------------------------------

    def _count(self, key_id):
        """Refuse a request beyond ``rate_limit`` in the last minute."""
        now = self.clock.seconds()
        recent = self._recent.setdefault(key_id, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.rate_limit:
            wait = max(1, int(recent[0] + 60 - now + 1))
            raise Throttled(f"API key {key_id} made {self.rate_limit} requests in the last minute; wait {wait} s")
        recent.append(now)

    @defer.inlineCallbacks
    def authenticate(self, token):
        """A session-like value for a credential string (see ``credential``); NotLoggedIn or Throttled."""
        from papertrader.master.accounts import Session

        key_id, secret = split_credential(token)
        entry = self._entries.get(key_id)
        while entry is None:
            forgets = self._forgets
            rows = yield self.db.query(
                "SELECT p.account_id, a.username, k.secret_hash, k.last_used, k.portfolio_id, a.disabled FROM"
                " api_keys k JOIN portfolios p ON p.id = k.portfolio_id JOIN accounts a ON a.id = p.account_id"
                " WHERE k.key_id = ? AND k.revoked IS NULL AND p.closed IS NULL AND a.deleted IS NULL", (key_id,))
            if not rows:
                raise NotLoggedIn("unknown or revoked API key")
            account_id, username, hashed, last_used, portfolio_id, disabled = rows[0]
            if disabled:
                # Only for the right secret: a wrong one learns nothing of the account.  Never cached, so the
                # key works again as soon as the account is enabled.
                if not hmac.compare_digest(hashed, secret_hash(secret)):
                    raise NotLoggedIn("unknown or revoked API key")
                raise AccountDisabled(f"the account of API key {key_id} has been disabled by the operator")
            if self._forgets != forgets:
                continue  # keys were forgotten while it was read (revoked, the account disabled): read it again
            entry = KeyEntry(key_id, account_id, username, hashed, parse_iso(last_used) if last_used else None,
                             portfolio_id)
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[key_id] = entry
        if not hmac.compare_digest(entry.secret_hash, secret_hash(secret)):
            raise NotLoggedIn("unknown or revoked API key")
        self._count(key_id)
        now = self.now()
        if entry.last_used is None or now - entry.last_used >= timedelta(minutes=1):
            entry.last_used = now
            try:
                yield self.db.execute("UPDATE api_keys SET last_used = ? WHERE key_id = ?", (iso(now), key_id))
            except Exception:
                self.log.failure("could not record an API key's last use")
        return Session(f"key:{key_id}", entry.account_id, entry.username, NEVER, now, now, api_key=key_id,
                       portfolio_id=entry.portfolio_id)
