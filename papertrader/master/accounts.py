"""Accounts and sessions: registration, bcrypt passwords, session tokens.

Passwords: SHA-256, then bcrypt (``papertrader.passwords``), hashed in a
bounded pool of separate low-priority processes (``pools.HASHING``), so the
reactor never stalls and a crowd logging in does not slow acknowledging orders.

Tokens: 256 random bits, given to the client once; the database and memory
keep only their SHA-256.  Wrong user and wrong password are one error and
cost the same bcrypt check.

The operator (``papertrader-admin user``, over the admin channel) may list accounts, disable and enable
one, and reset its password: a disabled account cannot log in (``account_disabled``, said only to whoever
gives its right password, or signs in with its provider), its sessions end at once as with ``logout --all``
and its API keys are refused until it is enabled again.
"""

import collections
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from twisted.internet import defer

from papertrader import pools, throttle
from papertrader.passwords import check_password, hash_password, hash_rounds
from papertrader.errors import (AccountDisabled, BadCredentials, InvalidInput, NotLoggedIn, NotPermitted,
                               ProviderLoginFailed, UnknownUser, UsernameTaken)
from papertrader.logs import counted
from papertrader.master import api_keys, validation
from papertrader.master.db import is_unique_violation
from papertrader.master.order_store import OrderStore
from papertrader.master.portfolios import DEFAULT_NAME, PortfolioStore
from papertrader.money import from_cents, from_quantity_units, to_cents
from papertrader.throttle import Throttle
from papertrader.times import iso, parse_iso, utc

SESSION_TTL = timedelta(hours=24)
SESSION_CACHE = 100_000  # sessions kept in memory; the database is the truth
REMEMBER_TTL = timedelta(days=30)
#: Longest reason an operator may give for disabling an account.
MAX_REASON = 200
#: How many times one address's room (free failures, attempts) a username has from all addresses together.
NAME_FACTOR = 10
#: Accounts one AdminUsers answer lists (a row is at most some 600 bytes: one AMP value holds 64 kB).
USERS_PAGE = 100
DISABLED = "this account has been disabled by the operator; ask them to enable it"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass
class Session:
    token_hash: str
    account_id: int
    username: str
    expires: datetime
    last_used: datetime = None
    #: When last_used was last written to the database (it is written at most once a minute).
    stored: datetime = None
    #: The API key the request came with (None: a session of a person).
    api_key: str = None
    #: The portfolio an API key belongs to (None for a person's session: each command names its portfolio,
    #: or trades the default one); ``portfolio`` is the resolved Portfolio for a trading command.
    portfolio_id: int = None
    portfolio: object = None


@dataclass(frozen=True)
class _Ticket:
    """A provider sign-in awaiting a username (ProviderCreate) or a password (ProviderLink)."""

    identity: object
    remember: bool
    device: str  # what the client said it is, for its session
    expires: float  # clock seconds


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    email: str
    cash: object  # Decimal
    created: datetime


class Accounts:
    """Registration, login, token validation and logout, over the database."""

    def __init__(self, db, settings, clock, log, market_clock=None):
        self.db = db
        self.settings = settings
        self.clock = clock
        #: The market's clock (a replay's own time), for when a new account's portfolio began; None: not known.
        self.market_clock = market_clock
        self.log = log
        self._sessions = collections.OrderedDict()  # token hash -> Session, newest use last (a bounded cache)
        #: Called with a token hash when a session ends (the master tells the workers).
        self.on_session_ended = []
        self._dummy_hash = None
        self._tickets = {}  # ticket -> _Ticket: a provider sign-in awaiting a username
        #: Sessions ended because the operator disabled their account: token hash -> (account id, expiry), so
        #: their next command says why (account_disabled) rather than only not_logged_in.  Memory only (a
        #: restarted master says not_logged_in; a login then says account_disabled), bounded like _sessions.
        self._disabled_sessions = collections.OrderedDict()
        self._forgets = 0  # how many times sessions were dropped from memory (see authenticate)
        self.login_throttle = Throttle(clock, settings.login_free_attempts, settings.login_ceiling,
                                       settings.throttle_window)
        #: A name's failures from every address at once: ten times the room of one address's, so that guessing
        #: from many addresses is still held off, while one address cannot keep the name's owner out.
        self.name_throttle = Throttle(clock, NAME_FACTOR * settings.login_free_attempts,
                                      NAME_FACTOR * settings.login_ceiling, settings.throttle_window)
        #: The API keys (set by the master; None: API keys are not accepted).
        self.api_keys = None
        self.register_throttle = throttle.registrations(clock, settings)

    def now(self):
        return utc(self.clock.seconds())

    def market_now(self):
        """The market's time now (read in the reactor's thread), or None without a market clock."""
        return self.market_clock.now() if self.market_clock is not None else None

    def _default_portfolio(self, cursor, account_id, created, began):
        """A new account's default portfolio: a cash account with the deployment's starting cash (its id in the
        HTTP API is the account's); ``began``: the market's time."""
        cursor.execute(self.db.sql("SELECT uuid FROM accounts WHERE id = ?"), (account_id,))
        PortfolioStore(self.db).create(cursor, account_id, DEFAULT_NAME, "cash", self.settings.starting_cash,
                                       parse_iso(created), is_default=True, portfolio_uuid=cursor.fetchone()[0],
                                       began=began)

    @defer.inlineCallbacks
    def register(self, username, email, password, client_ip="local"):
        validation.username(username)
        email = validation.email(email)
        password = validation.password(password)
        # Counted only now: a typo (invalid input, weak password) costs nothing and uses up no attempt;
        # a valid request costs a password hash, taken username or not.
        self.register_throttle.check(("address", client_ip))
        hashed = yield pools.HASHING.run(hash_password, password, self.settings.bcrypt_rounds)
        created = iso(self.now())
        began = self.market_now()

        def insert(cursor):
            self._refuse_look_alike(cursor, username)
            cursor.execute(
                self.db.sql(
                    "INSERT INTO accounts (username, username_key, username_skeleton, email, password_hash,"
                    " cash_cents, created, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
                ),
                (username, username.lower(), validation.username_skeleton(username), email, hashed,
                 to_cents(self.settings.starting_cash), created, str(uuid.uuid4())),
            )
            account_id = cursor.fetchone()[0]
            self._default_portfolio(cursor, account_id, created, began)
            return account_id

        try:
            account_id = yield self.db.run(insert)
        except Exception as e:
            if is_unique_violation(e):
                raise UsernameTaken(f"the username {username!r} is already taken")
            raise
        self.log.info("account {username} registered (id {id})", username=username, id=account_id)
        return Account(account_id, username, email, self.settings.starting_cash, parse_iso(created))

    @defer.inlineCallbacks
    def login(self, username, password, remember, worker, client_ip, device=None):
        # A name from one address (its delays), an address (its ceiling, whatever names it tries), a name from
        # everywhere (a larger room: name_throttle).  One address guessing a name holds off that address, not the
        # name's owner elsewhere.
        guessed = (username or "").lower()[:64]
        address_key = ("address", client_ip)
        self._before_guess(guessed, client_ip, address_key)

        def failed():
            self._wrong_guess(guessed, client_ip, address_key)

        if not (3 <= len(username or "") <= 64) or not password or len(password) > validation.MAX_PASSWORD:
            failed()
            raise BadCredentials()
        rows = yield self.db.query(
            "SELECT id, username, password_hash, disabled FROM accounts WHERE username_key = ?", (username.lower(),)
        )
        disabled = False
        if rows and rows[0][2]:
            account_id, name, hashed, disabled = rows[0]
        else:
            # Same work whether or not the account exists: no timing oracle.
            if self._dummy_hash is None:
                self._dummy_hash = yield pools.HASHING.run(
                    hash_password, secrets.token_hex(16), self.settings.bcrypt_rounds
                )
            account_id, name, hashed = None, None, self._dummy_hash
        ok = yield pools.HASHING.run(check_password, password, hashed)
        if not ok or account_id is None:
            self.log.warn("failed login for {username!r} from {ip} via {worker}",
                          username=username[:64], ip=client_ip, worker=worker)
            failed()
            raise BadCredentials()
        self._right_guess(guessed, client_ip)
        # The address's ceiling is against guessing: a right password is not a guess, so a class signing in
        # from behind one address is not held off by its own sign-ins (the name's ceiling still counts it).
        self.login_throttle.refund(address_key)
        if disabled:
            # Said only to whoever knows the password: to anyone else the account is as any other.
            self.log.warn("login of disabled account {username} refused (from {ip} via {worker})", username=name,
                          ip=client_ip, worker=worker)
            raise AccountDisabled(DISABLED)
        if hash_rounds(hashed) < self.settings.bcrypt_rounds:
            # The cost was raised since this hash was made: re-hash now that we know the password.
            rehashed = yield pools.HASHING.run(hash_password, password, self.settings.bcrypt_rounds)
            yield self.db.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (rehashed, account_id))
            self.log.info("password hash of {username} upgraded to bcrypt cost {rounds}", username=name,
                          rounds=self.settings.bcrypt_rounds)
        result = yield self._open_session(account_id, name, remember, worker, client_ip, device=device)
        return result

    # A guess at an account's password (a sign-in, the current password to change it or delete the account)
    # counts for the name from that address (its delays: login_throttle) and from everywhere (name_throttle);
    # ``more``: other keys of login_throttle (the address's own).

    def _before_guess(self, name, client_ip, *more):
        everywhere = ("name", name)
        self.name_throttle.refuse(everywhere)
        self.login_throttle.check(("name", name, client_ip), *more)
        self.name_throttle.count(everywhere)

    def _wrong_guess(self, name, client_ip, *more):
        self.login_throttle.failed(("name", name, client_ip), *more)
        self.name_throttle.failed(("name", name))

    def _right_guess(self, name, client_ip):
        self.login_throttle.succeeded(("name", name, client_ip))
        self.name_throttle.succeeded(("name", name))
        self.name_throttle.refund(("name", name))

    @defer.inlineCallbacks
    def _open_session(self, account_id, name, remember, worker, client_ip, how="password", device=None):
        """A new session; ``device``: what the client said it is (validation.device), for the sessions list."""
        token = secrets.token_urlsafe(32)
        now = self.now()
        expires = now + (REMEMBER_TTL if remember else SESSION_TTL)
        hashed_token = token_hash(token)

        def store(cursor):
            sql = self.db.sql
            # Checked again here, with the session's insert: an account disabled during a login gets no session.
            cursor.execute(sql("UPDATE accounts SET last_login = ? WHERE id = ? AND disabled IS NULL AND deleted IS"
                               " NULL"), (iso(now), account_id))
            if cursor.rowcount != 1:
                cursor.execute(sql("SELECT deleted FROM accounts WHERE id = ?"), (account_id,))
                if cursor.fetchone()[0] is not None:  # deleted during the login: it no longer exists
                    raise BadCredentials()
                raise AccountDisabled(DISABLED)
            cursor.execute(
                sql("INSERT INTO sessions (token_hash, account_id, created, expires, worker, client_ip, public_id,"
                    " last_used, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (hashed_token, account_id, iso(now), iso(expires), worker, client_ip, secrets.token_hex(6), iso(now),
                 validation.device(device)),
            )

        yield self.db.run(store)
        self._remember(Session(hashed_token, account_id, name, expires, now, now))
        self.log.info("{username} logged in ({how}) from {ip} via {worker}", username=name, how=how, ip=client_ip,
                      worker=worker)
        return token, name, expires

    # --- third-party identities ---------------------------------------------

    @defer.inlineCallbacks
    def identity_login(self, identity, remember, worker, client_ip, device=None):
        """A session for the account linked to ``identity``; or, when there is none, a ticket to create or
        link one (fires with a dict: token/username/expires, or ticket/proposal)."""
        rows = yield self.db.query(
            "SELECT a.id, a.username, a.disabled FROM identities i JOIN accounts a ON a.id = i.account_id"
            " WHERE i.issuer = ? AND i.subject = ?", (identity.issuer, identity.subject))
        if rows and rows[0][2]:
            self.log.warn("sign-in of disabled account {username} through {issuer} refused (from {ip} via"
                          " {worker})", username=rows[0][1], issuer=identity.issuer, ip=client_ip, worker=worker)
            raise AccountDisabled(DISABLED)
        if rows:
            token, name, expires = yield self._open_session(rows[0][0], rows[0][1], remember, worker, client_ip,
                                                            "provider", device)
            return dict(token=token, username=name, expires=expires)
        self._expire_tickets()
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = _Ticket(identity, remember, device, self.clock.seconds() + 600)
        proposal = yield self._propose(identity.email)
        return dict(ticket=ticket, proposal=proposal)

    def _expire_tickets(self):
        now = self.clock.seconds()
        for ticket in [t for t, found in self._tickets.items() if found.expires <= now]:
            del self._tickets[ticket]

    def _ticket(self, ticket):
        self._expire_tickets()
        found = self._tickets.pop(ticket or "", None)
        if found is None:
            raise ProviderLoginFailed("this sign-in is unknown or has expired; sign in with the provider again")
        return found

    def _refuse_look_alike(self, cursor, username):
        """UsernameTaken if another account's username looks like ``username`` (validation.username_skeleton):
        on a leaderboard, which shows usernames only, one player could pass for another."""
        cursor.execute(self.db.sql("SELECT username FROM accounts WHERE username_skeleton = ? AND username_key <> ?"
                                   " AND deleted IS NULL"),
                       (validation.username_skeleton(username), username.lower()))
        row = cursor.fetchone()
        if row is not None:
            raise UsernameTaken(f"the username {username!r} looks too much like {row[0]!r}, which is taken (I, l"
                                " and 1 look alike, as do 0 and O, rn and m, vv and w): choose another")

    @defer.inlineCallbacks
    def _propose(self, email):
        base = re.sub(r"[^A-Za-z0-9_.\-]", "", (email or "").split("@")[0])[:20] or "trader"
        base = base if len(base) >= 3 else base + "000"[:3 - len(base)]
        candidate = base
        for n in range(1, 1000):
            rows = yield self.db.query("SELECT 1 FROM accounts WHERE username_key = ? OR username_skeleton = ?",
                                       (candidate.lower(), validation.username_skeleton(candidate)))
            if not rows:
                return candidate
            candidate = f"{base[:20]}{n}"
        return secrets.token_hex(4)

    @defer.inlineCallbacks
    def create_from_identity(self, ticket, username, worker, client_ip):
        """A new account without a password, linked to the ticket's identity; fires with a session."""
        found = self._ticket(ticket)
        identity = found.identity
        validation.username(username)
        email = identity.email if validation.EMAIL_RE.fullmatch(identity.email or "") else f"{username}@invalid"
        created = iso(self.now())
        began = self.market_now()

        def insert(cursor):
            self._refuse_look_alike(cursor, username)
            cursor.execute(
                self.db.sql("INSERT INTO accounts (username, username_key, username_skeleton, email, password_hash,"
                            " cash_cents, created, uuid) VALUES (?, ?, ?, ?, NULL, ?, ?, ?) RETURNING id"),
                (username, username.lower(), validation.username_skeleton(username), email,
                 to_cents(self.settings.starting_cash), created, str(uuid.uuid4())))
            account_id = cursor.fetchone()[0]
            self._default_portfolio(cursor, account_id, created, began)
            cursor.execute(self.db.sql("INSERT INTO identities (issuer, subject, account_id, email, created)"
                                       " VALUES (?, ?, ?, ?, ?)"),
                           (identity.issuer, identity.subject, account_id, identity.email, created))
            return account_id

        try:
            account_id = yield self.db.run(insert)
        except UsernameTaken:  # one that looks like another's
            self._tickets[ticket] = replace(found, expires=self.clock.seconds() + 600)  # let them pick another
            raise
        except Exception as e:
            if is_unique_violation(e):
                self._tickets[ticket] = replace(found, expires=self.clock.seconds() + 600)  # let them pick another
                raise UsernameTaken(f"the username {username!r} is already taken")
            raise
        self.log.info("account {username} created through {issuer}", username=username, issuer=identity.issuer)
        result = yield self._open_session(account_id, username, found.remember, worker, client_ip, "provider",
                                          found.device)
        return result

    @defer.inlineCallbacks
    def link_identity(self, ticket, username, password, worker, client_ip):
        """Link the ticket's identity to an existing password account (its password is required)."""
        found = self._ticket(ticket)
        identity = found.identity
        try:
            token, name, session_expires = yield self.login(username, password, found.remember, worker, client_ip,
                                                            found.device)
        except BadCredentials:
            self._tickets[ticket] = found
            raise
        session = yield self.authenticate(token)
        yield self.db.execute("INSERT INTO identities (issuer, subject, account_id, email, created)"
                              " VALUES (?, ?, ?, ?, ?)",
                              (identity.issuer, identity.subject, session.account_id, identity.email,
                               iso(self.now())))
        self.log.info("{username} linked a login from {issuer}", username=name, issuer=identity.issuer)
        return token, name, session_expires

    # --- profiles and deletion -----------------------------------------------

    @defer.inlineCallbacks
    def profile(self, session, username=None):
        """Your profile in full, or another user's public part (positions only if they made them public)."""
        key = (username or session.username).lower()
        rows = yield self.db.query(
            "SELECT id, username, email, cash_cents, created, public_portfolio, password_hash FROM accounts"
            " WHERE username_key = ? AND deleted IS NULL", (key[:64],))
        if not rows:
            raise InvalidInput(f"no user {username!r}")
        account_id, name, email, cash, created, public, hashed = rows[0]
        own = account_id == session.account_id
        profile = dict(username=name, joined=parse_iso(created), public_portfolio=bool(public))
        if own:
            identities = yield self.db.query("SELECT issuer FROM identities WHERE account_id = ?", (account_id,))
            cash = yield self.db.query("SELECT cash_cents FROM portfolios WHERE account_id = ? AND is_default = 1"
                                       " AND closed IS NULL", (account_id,))
            profile.update(email=email, cash=from_cents(cash[0][0]) if cash else from_cents(0),
                           sign_in=(["password"] if hashed else []) + [r[0] for r in identities])
        if own or public:
            positions = yield self.db.query(
                "SELECT symbol, quantity_units FROM positions WHERE portfolio_id IN (SELECT id FROM portfolios"
                " WHERE account_id = ? AND is_default = 1 AND closed IS NULL) ORDER BY symbol", (account_id,))
            profile["positions"] = [dict(symbol=p[0], quantity=from_quantity_units(p[1])) for p in positions]
        return profile

    def set_public(self, session, public):
        return self.db.execute("UPDATE accounts SET public_portfolio = ? WHERE id = ?",
                               (1 if public else 0, session.account_id))

    @defer.inlineCallbacks
    def delete(self, session, password=None, identity=None, client_ip="unknown"):
        """Remove the account's personal data and end its sessions; its ledger rows stay consistent.

        Proof of ownership: its password; or, for an account without one, a fresh provider ``identity``
        linked to it.
        """
        name = session.username.lower()
        rows = yield self.db.query("SELECT password_hash FROM accounts WHERE id = ?", (session.account_id,))
        hashed = rows[0][0]
        if hashed:
            self._before_guess(name, client_ip)  # as change_password: no more guesses than at the sign-in
            ok = bool(password) and len(password) <= validation.MAX_PASSWORD and (
                yield pools.HASHING.run(check_password, password, hashed))
            if not ok:
                self._wrong_guess(name, client_ip)
                raise BadCredentials("the password is wrong: nothing was deleted" if password else
                                     "deleting this account needs its password: nothing was deleted")
        else:
            linked = yield self.db.query(
                "SELECT 1 FROM identities WHERE account_id = ? AND issuer = ? AND subject = ?",
                (session.account_id, identity.issuer, identity.subject)) if identity else []
            if not linked:
                raise BadCredentials("this account has no password: deleting it needs a fresh sign-in with its"
                                     " provider; nothing was deleted" if identity is None else
                                     "that sign-in is not one of this account's: deleting it needs a fresh sign-in"
                                     " with its own provider; nothing was deleted")
        yield self._scrub(session.account_id)
        self.log.info("account {id} deleted by its owner", id=session.account_id)

    @defer.inlineCallbacks
    def operator_delete(self, username):
        """The operator deletes an account (a user who cannot sign in any more asked for it): as its owner's
        delete-account does.  Fires with dict(username, sessions_ended, orders_canceled)."""
        account_id, name = yield self._find(username)
        ended, canceled = yield self._scrub(account_id)
        self.log.info("operator deleted account {username} (now deleted-{id}): {ended} ended, {orders} canceled",
                      username=name, id=account_id, ended=counted(ended, "session"),
                      orders=counted(canceled, "open order"))
        return dict(username=name, sessions_ended=ended, orders_canceled=canceled)

    @defer.inlineCallbacks
    def _scrub(self, account_id):
        """Remove an account's personal data (and its watchlists), end its sessions, cancel its open orders and
        revoke its keys; its ledger rows stay consistent.  Fires with (sessions ended, open orders canceled)."""
        stamp = iso(self.now())
        anonymous = f"deleted-{account_id}"

        def scrub(cursor):
            sql = self.db.sql
            if self.db.dialect == "postgresql":
                # The account's row first, as a watchlist change locks it (master/watchlists.py): a list made
                # meanwhile is made before, and deleted here, or after, and refused (the account is gone).
                cursor.execute(sql("SELECT id FROM accounts WHERE id = ? FOR UPDATE"), (account_id,))
                cursor.fetchall()
            cursor.execute(sql("SELECT token_hash FROM sessions WHERE account_id = ?"), (account_id,))
            ended = [r[0] for r in cursor.fetchall()]
            cursor.execute(sql("DELETE FROM sessions WHERE account_id = ?"), (account_id,))
            cursor.execute(sql("DELETE FROM identities WHERE account_id = ?"), (account_id,))
            cursor.execute(sql("DELETE FROM watchlists WHERE account_id = ?"), (account_id,))
            # Its portfolios locked and marked changed, as every writer of orders does (master/order_store.py).
            cursor.execute(sql("SELECT id FROM portfolios WHERE account_id = ?"), (account_id,))
            portfolio_ids = sorted(r[0] for r in cursor.fetchall())
            orders = OrderStore(self.db)
            orders.lock_accounts(cursor, portfolio_ids)
            orders.open_memory.changed(portfolio_ids)
            cursor.execute(sql("UPDATE orders SET status = 'canceled', reason = 'account deleted',"
                               " reason_code = 'account_deleted', updated = ? WHERE portfolio_id IN"
                               " (SELECT id FROM portfolios WHERE account_id = ?)"
                               " AND status IN ('new', 'partially_filled')"), (stamp, account_id))
            canceled = cursor.rowcount
            cursor.execute(sql("UPDATE orders SET client_ip = '' WHERE portfolio_id IN (SELECT id FROM portfolios"
                               " WHERE account_id = ?)"), (account_id,))
            cursor.execute(sql("UPDATE accounts SET username = ?, username_key = ?, username_skeleton = NULL,"
                               " email = '', password_hash = NULL, public_portfolio = 0, deleted = ? WHERE id = ?"),
                           (anonymous, anonymous, stamp, account_id))
            return ended, canceled

        ended, canceled = yield self.db.run(scrub)
        self._forget(ended)
        if self.api_keys is not None:
            yield self.api_keys.revoke_all(account_id)
        return len(ended), canceled

    @defer.inlineCallbacks
    def set_password(self, session, password):
        """Give a password to an account that has none (made through a provider)."""
        rows = yield self.db.query("SELECT password_hash FROM accounts WHERE id = ?", (session.account_id,))
        if rows and rows[0][0]:
            raise InvalidInput("this account has a password already; change it with 'passwd'")
        password = validation.password(password)
        hashed = yield pools.HASHING.run(hash_password, password, self.settings.bcrypt_rounds)
        yield self.db.execute("UPDATE accounts SET password_hash = ? WHERE id = ? AND password_hash IS NULL",
                              (hashed, session.account_id))
        self.log.info("{username} set a password", username=session.username)

    @defer.inlineCallbacks
    def authenticate(self, token, use=True):
        """The live Session of ``token`` (a session token, or an API key's credential), or NotLoggedIn.  ``use``
        false: only whether it is live (a page left open asks), not counted as its use."""
        if self.api_keys is not None and api_keys.is_credential(token):
            session = yield self.api_keys.authenticate(token)
            return session
        validation.token(token)
        hashed = token_hash(token)
        session = self._sessions.get(hashed)
        while session is None:
            forgets = self._forgets
            rows = yield self.db.query(
                "SELECT s.account_id, a.username, s.expires, s.last_used, a.disabled FROM sessions s"
                " JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = ?",
                (hashed,),
            )
            if not rows:
                ended = self._disabled_sessions.get(hashed)
                if ended is not None and ended[1] > self.now():
                    raise AccountDisabled(f"your session was ended: {DISABLED}")
                raise NotLoggedIn()
            if rows[0][4]:
                # A session opened while its account was being disabled: ended now.
                yield self._end([hashed], "DELETE FROM sessions WHERE token_hash = ?", (hashed,))
                raise AccountDisabled(f"your session was ended: {DISABLED}")
            if self._forgets != forgets:
                continue  # sessions ended while it was read (a logout, the account disabled): read it again
            last_used = parse_iso(rows[0][3])
            session = Session(hashed, rows[0][0], rows[0][1], parse_iso(rows[0][2]), last_used, last_used)
            self._remember(session)
        self._sessions.move_to_end(hashed)
        now = self.now()
        if session.expires <= now:
            self._sessions.pop(hashed, None)
            raise NotLoggedIn("your session has expired; log in again")
        if (now - session.last_used).total_seconds() > self.settings.session_idle_timeout:
            yield self._end([hashed], "DELETE FROM sessions WHERE token_hash = ?", (hashed,))
            raise NotLoggedIn("your session ended after being unused too long; log in again")
        if not use:
            return session
        session.last_used = now
        if (now - session.stored).total_seconds() >= 60:
            session.stored = now
            try:
                yield self.db.execute("UPDATE sessions SET last_used = ? WHERE token_hash = ?", (iso(now), hashed))
            except Exception:
                self.log.failure("could not record a session's last use")
        return session

    @defer.inlineCallbacks
    def _end(self, hashes, delete, params):
        """Delete sessions (``delete`` with ``params``), forget them, and tell the workers."""
        yield self.db.execute(delete, params)
        self._forget(hashes)
        return len(hashes)

    def _forget(self, hashes):
        """Drop ended sessions from memory and tell the workers (through on_session_ended)."""
        self._forgets += 1  # a lookup under way when this happened must not remember what it read
        for hashed in hashes:
            self._sessions.pop(hashed, None)
            for notify in self.on_session_ended:
                notify(hashed)

    @defer.inlineCallbacks
    def sessions(self, session):
        """Every live session of the account: public id, created, last used, worker, client IP, expiry."""
        rows = yield self.db.query(
            "SELECT public_id, created, last_used, worker, client_ip, expires, token_hash, device FROM sessions"
            " WHERE account_id = ? ORDER BY created", (session.account_id,))
        out = []
        for public_id, created, last_used, worker, client_ip, expires, hashed, device in rows:
            cached = self._sessions.get(hashed)
            used = cached.last_used if cached is not None else parse_iso(last_used)
            out.append(dict(id=public_id, created=parse_iso(created), last_used=used, worker=worker,
                            client_ip=client_ip, expires=parse_iso(expires), current=hashed == session.token_hash,
                            device=device))
        return out

    @defer.inlineCallbacks
    def end_session(self, session, public_id):
        """End one of the account's sessions by its public id."""
        rows = yield self.db.query("SELECT token_hash FROM sessions WHERE account_id = ? AND public_id = ?",
                                   (session.account_id, public_id))
        if not rows:
            raise InvalidInput(f"no session {public_id!r} on your account")
        yield self._end([rows[0][0]], "DELETE FROM sessions WHERE token_hash = ?", (rows[0][0],))
        self.log.info("{username} ended session {id}", username=session.username, id=public_id)

    @defer.inlineCallbacks
    def logout_all(self, session):
        """End every session of the account, this one included."""
        rows = yield self.db.query("SELECT token_hash FROM sessions WHERE account_id = ?", (session.account_id,))
        ended = yield self._end([r[0] for r in rows], "DELETE FROM sessions WHERE account_id = ?",
                                (session.account_id,))
        self.log.info("{username} logged out everywhere ({n} sessions)", username=session.username, n=ended)
        return ended

    @defer.inlineCallbacks
    def change_password(self, session, old, new, client_ip="unknown"):
        """Replace the password (the old one is required) and end every other session of the account."""
        # Guesses of the current password count as failed logins of the account from that address (and from
        # everywhere): a stolen session gets no more tries at the password than a stranger at the sign-in.
        name = session.username.lower()
        self._before_guess(name, client_ip)
        rows = yield self.db.query("SELECT password_hash FROM accounts WHERE id = ?", (session.account_id,))
        hashed = rows[0][0] if rows else None
        ok = bool(hashed) and old and len(old) <= validation.MAX_PASSWORD and (
            yield pools.HASHING.run(check_password, old, hashed))
        if not ok:
            self.log.warn("{username} gave a wrong current password", username=session.username)
            self._wrong_guess(name, client_ip)
            raise BadCredentials("the current password is wrong")
        self._right_guess(name, client_ip)
        if new == old:
            raise InvalidInput("the new password is the same as the current one: choose another")
        new = validation.password(new)
        rehashed = yield pools.HASHING.run(hash_password, new, self.settings.bcrypt_rounds)

        def store(cursor):
            cursor.execute(self.db.sql("UPDATE accounts SET password_hash = ? WHERE id = ?"),
                           (rehashed, session.account_id))
            cursor.execute(self.db.sql("SELECT token_hash FROM sessions WHERE account_id = ? AND token_hash <> ?"),
                           (session.account_id, session.token_hash))
            others = [r[0] for r in cursor.fetchall()]
            cursor.execute(self.db.sql("DELETE FROM sessions WHERE account_id = ? AND token_hash <> ?"),
                           (session.account_id, session.token_hash))
            return others

        ended = yield self.db.run(store)
        self._forget(ended)
        self.log.info("{username} changed their password; {ended} ended", username=session.username,
                      ended=counted(len(ended), "other session"))
        return len(ended)

    # --- the operator's (papertrader-admin user, over the admin channel) ------------------------------------

    _USER_COLUMNS = (
        "a.id, a.username, a.email, a.created, a.last_login, a.disabled, a.disabled_reason,"
        " CASE WHEN a.password_hash IS NULL THEN 0 ELSE 1 END,"
        " (SELECT COUNT(*) FROM portfolios p WHERE p.account_id = a.id AND p.closed IS NULL),"
        " (SELECT COUNT(*) FROM sessions s WHERE s.account_id = a.id AND s.expires > ?),"
        " (SELECT COUNT(*) FROM api_keys k JOIN portfolios p ON p.id = k.portfolio_id WHERE p.account_id = a.id"
        " AND k.revoked IS NULL)")

    @staticmethod
    def _user_row(row):
        _, name, email, created, last_login, disabled, reason, password, portfolios, sessions, keys = row
        user = dict(username=name, email=email, created=parse_iso(created), password=bool(password),
                    portfolios=portfolios, sessions=sessions, api_keys=keys)
        for key, value in (("last_login", parse_iso(last_login) if last_login else None),
                           ("disabled", parse_iso(disabled) if disabled else None), ("disabled_reason", reason)):
            if value is not None:
                user[key] = value
        return user

    @defer.inlineCallbacks
    def _find(self, username):
        """(id, username) of the (not deleted) account named ``username``, in any case; UnknownUser if none."""
        rows = yield self.db.query("SELECT id, username FROM accounts WHERE username_key = ? AND deleted IS NULL",
                                   ((username or "")[:64].lower(),))
        if not rows:
            raise UnknownUser(f"no account named {(username or '')[:64]!r}")
        return rows[0]

    @defer.inlineCallbacks
    def users(self, search=None, after=None):
        """A page of accounts in the order they were made (USERS_PAGE at most, after the cursor ``after``),
        those whose username or email holds ``search`` (any case) if given; fires with dict(users, next): next is
        the cursor of the next page, None after the last."""
        where, params = ["a.deleted IS NULL", "a.id > ?"], [iso(self.now()), after or 0]
        if search:
            pattern = "%" + search.strip().lower()[:254].replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            where.append("(a.username_key LIKE ? ESCAPE '\\' OR LOWER(a.email) LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        rows = yield self.db.query(f"SELECT {self._USER_COLUMNS} FROM accounts a WHERE {' AND '.join(where)}"
                                   f" ORDER BY a.id LIMIT {USERS_PAGE}", tuple(params))
        return dict(users=[self._user_row(r) for r in rows],
                    next=rows[-1][0] if len(rows) == USERS_PAGE else None)

    @defer.inlineCallbacks
    def user(self, username):
        """One account as the operator sees it: users()'s fields, how it signs in, its open portfolios, open
        orders and API keys."""
        account_id, _ = yield self._find(username)
        rows = yield self.db.query(f"SELECT {self._USER_COLUMNS} FROM accounts a WHERE a.id = ?",
                                   (iso(self.now()), account_id))
        user = self._user_row(rows[0])
        issuers = yield self.db.query("SELECT issuer FROM identities WHERE account_id = ? ORDER BY created",
                                      (account_id,))
        portfolios = yield self.db.query("SELECT name FROM portfolios WHERE account_id = ? AND closed IS NULL"
                                         " ORDER BY is_default DESC, id", (account_id,))
        orders = yield self.db.query("SELECT COUNT(*) FROM orders WHERE portfolio_id IN (SELECT id FROM portfolios"
                                     " WHERE account_id = ?) AND status IN ('new', 'partially_filled')",
                                     (account_id,))
        keys = yield self.db.query("SELECT k.key_id, k.name, p.name FROM api_keys k JOIN portfolios p ON"
                                   " p.id = k.portfolio_id WHERE p.account_id = ? AND k.revoked IS NULL ORDER BY"
                                   " k.created", (account_id,))
        user.update(sign_in=(["password"] if user["password"] else []) + [r[0] for r in issuers],
                    portfolio_names=[r[0] for r in portfolios], open_orders=orders[0][0],
                    keys=[f"{k} ({name}, portfolio {portfolio})" for k, name, portfolio in keys])
        return user

    def _end_all(self, cursor, account_id):
        """In a transaction: delete every session of the account; their token hashes (to _forget afterwards)."""
        cursor.execute(self.db.sql("SELECT token_hash FROM sessions WHERE account_id = ?"), (account_id,))
        ended = [r[0] for r in cursor.fetchall()]
        cursor.execute(self.db.sql("DELETE FROM sessions WHERE account_id = ?"), (account_id,))
        return ended

    @defer.inlineCallbacks
    def disable(self, username, reason=None):
        """The operator disables an account: no more logins, every session ended now (as logout --all: the
        workers and the website hear of it at once), its API keys refused; its portfolios and orders stay (open
        orders stay open and may fill).  Fires with dict(username, disabled, already, sessions_ended, api_keys)."""
        reason = " ".join((reason or "").split()) or None
        if reason is not None and (len(reason) > MAX_REASON or not reason.isprintable()):
            raise InvalidInput(f"--reason: at most {MAX_REASON} printable characters")
        account_id, name = yield self._find(username)
        stamp = iso(self.now())

        def store(cursor):
            sql = self.db.sql
            cursor.execute(sql("SELECT disabled FROM accounts WHERE id = ?"), (account_id,))
            already = cursor.fetchone()[0]
            cursor.execute(sql("UPDATE accounts SET disabled = ?, disabled_reason = ? WHERE id = ?"),
                           (already or stamp, reason, account_id))
            return already, self._end_all(cursor, account_id)

        already, ended = yield self.db.run(store)
        expiry = self.now() + REMEMBER_TTL
        for hashed in ended:
            self._disabled_sessions[hashed] = (account_id, expiry)
        while len(self._disabled_sessions) > SESSION_CACHE:
            self._disabled_sessions.popitem(last=False)
        # Any session of the account still in memory (one opened while this ran) goes too.
        self._forget(ended + [h for h, s in self._sessions.items() if s.account_id == account_id and h not in ended])
        keys = (yield self.api_keys.forget_account(account_id)) if self.api_keys is not None else 0
        self.log.info("operator disabled account {username}{why}: {ended} ended, {keys} refused until it is enabled",
                      username=name, why=f" ({reason})" if reason else "", ended=counted(len(ended), "session"),
                      keys=counted(keys, "API key"))
        return dict(username=name, disabled=parse_iso(already or stamp), already=bool(already),
                    sessions_ended=len(ended), api_keys=keys)

    @defer.inlineCallbacks
    def enable(self, username):
        """The operator enables a disabled account again (its API keys work again; its ended sessions stay
        ended).  Fires with dict(username, was_disabled)."""
        account_id, name = yield self._find(username)
        rows = yield self.db.query("SELECT disabled FROM accounts WHERE id = ?", (account_id,))
        yield self.db.execute("UPDATE accounts SET disabled = NULL, disabled_reason = NULL WHERE id = ?",
                              (account_id,))
        for hashed in [h for h, (owner, _) in self._disabled_sessions.items() if owner == account_id]:
            del self._disabled_sessions[hashed]
        self.log.info("operator enabled account {username}{was}", username=name,
                      was="" if rows[0][0] else " (it was not disabled)")
        return dict(username=name, was_disabled=bool(rows[0][0]))

    @defer.inlineCallbacks
    def reset_password(self, username, password):
        """The operator sets a new password (the rules of registration apply; hashed in the same bounded pool)
        and ends every session of the account.  The password is never logged.  Fires with
        dict(username, sessions_ended)."""
        account_id, name = yield self._find(username)
        password = validation.password(password)
        hashed = yield pools.HASHING.run(hash_password, password, self.settings.bcrypt_rounds)

        def store(cursor):
            cursor.execute(self.db.sql("UPDATE accounts SET password_hash = ? WHERE id = ?"), (hashed, account_id))
            return self._end_all(cursor, account_id)

        ended = yield self.db.run(store)
        self._forget(ended)
        # A user locked out by wrong tries (from any address) may log in now.
        self.name_throttle.forget(lambda key: key == ("name", name.lower()))
        self.login_throttle.forget(lambda key: key[:2] == ("name", name.lower()))
        self.log.info("operator reset the password of {username}; {ended} ended", username=name,
                      ended=counted(len(ended), "session"))
        return dict(username=name, sessions_ended=len(ended))

    def _remember(self, session):
        self._sessions[session.token_hash] = session
        while len(self._sessions) > SESSION_CACHE:
            self._sessions.popitem(last=False)

    @defer.inlineCallbacks
    def logout(self, token):
        session = yield self.authenticate(token)
        if session.api_key is not None:
            raise NotPermitted("an API key is not a session: revoke it with 'papertrader api-key revoke KEY_ID'")
        yield self._end([session.token_hash], "DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))
        self.log.info("{username} logged out", username=session.username)

    @defer.inlineCallbacks
    def account(self, account_id):
        rows = yield self.db.query(
            "SELECT a.id, a.username, a.email, p.cash_cents, a.created FROM accounts a JOIN portfolios p"
            " ON p.account_id = a.id AND p.is_default = 1 AND p.closed IS NULL WHERE a.id = ?", (account_id,)
        )
        row = rows[0]
        return Account(row[0], row[1], row[2], from_cents(row[3]), parse_iso(row[4]))
