"""Watchlists: an account's named, ordered lists of symbols to follow (Alpaca's ``/v2/watchlists``).

A list belongs to the account (its user), not to one portfolio: the command line, the website and every API
key of the account see the same lists.  Each has a UUID (the HTTP API's id) and a name unique in the account;
its symbols keep the order they were added in, each once.  Every change is one transaction, the account's row
locked first (PostgreSQL; SQLite has one writer), so two changes of one list never lose each other's symbols.
An account's deletion removes its lists (master/accounts.py).
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from papertrader.errors import InvalidInput, NotLoggedIn, UnknownWatchlist
from papertrader.times import iso, parse_iso

#: Lists one account may have, symbols one list may hold, characters of a name (Alpaca's limit).
MAX_WATCHLISTS = 50
MAX_SYMBOLS = 200
MAX_NAME = 64

_COLUMNS = "uuid, name, symbols, created, updated"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Watchlist:
    uuid: str
    name: str
    symbols: tuple
    created: datetime
    updated: datetime

    def answer(self):
        """As the application answers it (commands.WATCHLIST)."""
        return dict(watchlist_id=self.uuid, name=self.name, symbols=list(self.symbols), created=self.created,
                    updated=self.updated)


def _row(row):
    uuid_, name, symbols, created, updated = row
    return Watchlist(uuid_, name, tuple(s for s in symbols.split(",") if s), parse_iso(created), parse_iso(updated))


def list_name(value):
    """A list's name: 1-64 printable characters, surrounding spaces dropped."""
    value = (value or "").strip()
    if not value or len(value) > MAX_NAME or not value.isprintable():
        raise InvalidInput(f"a watchlist's name is 1-{MAX_NAME} printable characters")
    return value


def symbols(values, check):
    """The symbols of a list, in order, each once, at most MAX_SYMBOLS, each through ``check`` (its symbol, or
    UnknownSymbol)."""
    values = list(dict.fromkeys(values or ()))
    if len(values) > MAX_SYMBOLS:
        raise InvalidInput(f"a watchlist holds at most {MAX_SYMBOLS} symbols")
    return list(dict.fromkeys(check(v) for v in values))


class WatchlistStore:
    """The ``watchlists`` table.  Each method takes the cursor of a transaction (``Database.run``)."""

    def __init__(self, db):
        self.db = db
        self.sql = db.sql

    def _lock(self, cursor, account_id):
        """The account's row locked until the change commits (PostgreSQL), and the account still there: one deleted
        meanwhile (master/accounts.py ``_scrub`` locks the row first too) gets no list."""
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        cursor.execute(self.sql(f"SELECT deleted FROM accounts WHERE id = ?{lock}"), (account_id,))
        row = cursor.fetchone()
        if row is None or row[0] is not None:
            raise NotLoggedIn("this account has been deleted")

    def of_account(self, cursor, account_id):
        """The account's lists, oldest first."""
        cursor.execute(self.sql(f"SELECT {_COLUMNS} FROM watchlists WHERE account_id = ? ORDER BY id"),
                       (account_id,))
        return [_row(r) for r in cursor.fetchall()]

    def find(self, cursor, account_id, watchlist_id=None, name=None):
        """The account's list of that id (a UUID) or name; UnknownWatchlist if it has none."""
        if watchlist_id is not None:
            wanted = (watchlist_id or "").strip().lower()
            if not UUID_RE.fullmatch(wanted):
                raise UnknownWatchlist(f"you have no watchlist {watchlist_id[:40]!r}")
            cursor.execute(self.sql(f"SELECT {_COLUMNS} FROM watchlists WHERE account_id = ? AND uuid = ?"),
                           (account_id, wanted))
            what = f"watchlist {wanted!r}"
        else:
            wanted = list_name(name)  # (as a list's name: never cut short, never with a control character)
            cursor.execute(self.sql(f"SELECT {_COLUMNS} FROM watchlists WHERE account_id = ? AND name = ?"),
                           (account_id, wanted))
            what = f"watchlist named {wanted!r}"
        row = cursor.fetchone()
        if row is None:
            raise UnknownWatchlist(f"you have no {what}")
        return _row(row)

    def _name_free(self, cursor, account_id, wanted, own=None):
        cursor.execute(self.sql("SELECT uuid FROM watchlists WHERE account_id = ? AND name = ?"), (account_id, wanted))
        row = cursor.fetchone()
        if row is not None and row[0] != own:
            raise InvalidInput(f"you already have a watchlist named {wanted!r}: choose another name")

    def create(self, cursor, account_id, wanted, listed, now):
        self._lock(cursor, account_id)
        cursor.execute(self.sql("SELECT COUNT(*) FROM watchlists WHERE account_id = ?"), (account_id,))
        if cursor.fetchone()[0] >= MAX_WATCHLISTS:
            raise InvalidInput(f"you already have {MAX_WATCHLISTS} watchlists; delete one first")
        self._name_free(cursor, account_id, wanted)
        made = Watchlist(str(uuid.uuid4()), wanted, tuple(listed), now, now)
        cursor.execute(self.sql("INSERT INTO watchlists (uuid, account_id, name, symbols, created, updated)"
                                " VALUES (?, ?, ?, ?, ?, ?)"),
                       (made.uuid, account_id, made.name, ",".join(made.symbols), iso(now), iso(now)))
        return made

    def change(self, cursor, account_id, selector, now, rename=None, edit=None):
        """The list ``selector`` (dict(watchlist_id=...) or dict(name=...)) renamed to ``rename`` (if given) and
        its symbols made ``edit(symbols)`` (if given); fires with the list as it is now."""
        self._lock(cursor, account_id)
        found = self.find(cursor, account_id, **selector)
        new_name = found.name if rename is None else rename
        if new_name != found.name:
            self._name_free(cursor, account_id, new_name, own=found.uuid)
        listed = found.symbols if edit is None else tuple(edit(found.symbols))
        if len(listed) > MAX_SYMBOLS:
            raise InvalidInput(f"a watchlist holds at most {MAX_SYMBOLS} symbols")
        cursor.execute(self.sql("UPDATE watchlists SET name = ?, symbols = ?, updated = ? WHERE account_id = ?"
                                " AND uuid = ?"), (new_name, ",".join(listed), iso(now), account_id, found.uuid))
        return Watchlist(found.uuid, new_name, listed, found.created, now)

    def delete(self, cursor, account_id, selector):
        self._lock(cursor, account_id)
        found = self.find(cursor, account_id, **selector)
        cursor.execute(self.sql("DELETE FROM watchlists WHERE account_id = ? AND uuid = ?"), (account_id, found.uuid))
        return found
