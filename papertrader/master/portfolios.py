"""The portfolio store: an account's portfolios, each a book of its own (cash, positions, orders, history,
API keys), as rows of ``portfolios`` (migration 0009).

The trading core calls a book's owner ``account_id``; in the master that number is the portfolio's id
(``orders.portfolio_id``, ``positions.portfolio_id``, ...).  An account always has exactly one open
default portfolio, made with the account.

A reset starts a new *generation*: orders and transactions carry the generation they were made in, so
the history of earlier generations stays readable (the archive) while the portfolio's lists show the
current one.

Every function takes a cursor and runs inside the caller's transaction.

Which portfolio a command trades is asked on every command; the answers are remembered
(``Remembered``), and forgotten whenever any portfolio row is written.
"""

import difflib
import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from papertrader.errors import InvalidInput, UnknownPortfolio
from papertrader.money import from_cents, to_cents
from papertrader.times import iso, parse_iso

KINDS = ("cash", "margin")
MAX_NAME = 64
DEFAULT_NAME = "default"

COLUMNS = ("id, uuid, account_id, name, kind, starting_cash_cents, cash_cents, is_default, generation, created,"
           " closed, game_id, margin_call_cents, margin_call_since, margin_call_deadline, borrow_fee_through, began")


@dataclass(frozen=True)
class Portfolio:
    id: int
    uuid: str
    account_id: int
    name: str
    kind: str
    starting_cash: object  # Decimal
    cash: object  # Decimal
    is_default: bool
    generation: int
    created: datetime
    closed: datetime = None
    game_id: int = None
    #: An open margin call: how much equity must come in, since when, liquidation after the deadline.
    margin_call: object = None
    margin_call_since: datetime = None
    margin_call_deadline: datetime = None
    #: The last day a short position's borrow fee was charged for (ISO date), or None.
    borrow_fee_through: str = None
    #: The market's time when it was made or last reset (where its equity curve starts; ``created`` is the wall
    #: clock's); None for a portfolio made before this was kept (migration 0022).
    began: datetime = None

    @property
    def margin(self):
        return self.kind == "margin"


def name(value):
    """A portfolio's name: 1-64 printable characters (spaces inside allowed), compared without case."""
    value = (value or "").strip() if isinstance(value, str) else ""
    if not 1 <= len(value) <= MAX_NAME or any(not ch.isprintable() for ch in value):
        raise InvalidInput(f"a portfolio's name is 1-{MAX_NAME} printable characters")
    return value


def _key(value):
    return value.casefold()


def _time(text):
    return parse_iso(text) if text else None


def _portfolio(row):
    return Portfolio(
        id=row[0], uuid=row[1], account_id=row[2], name=row[3], kind=row[4], starting_cash=from_cents(row[5]),
        cash=from_cents(row[6]), is_default=bool(row[7]), generation=row[8], created=parse_iso(row[9]),
        closed=_time(row[10]), game_id=row[11], margin_call=from_cents(row[12]) if row[12] is not None else None,
        margin_call_since=_time(row[13]), margin_call_deadline=_time(row[14]), borrow_fee_through=row[15],
        began=_time(row[16]))


class Remembered:
    """The portfolio each question (an account's default, one of its portfolios by name, a portfolio by id)
    was last answered with, so a command need not ask the database which portfolio it trades.

    The master is its database's only writer, and every write of a ``portfolios`` row but its cash calls
    ``changed`` (the stores' write methods do, in the writing transaction; the answers carry no cash): that
    makes every answer remembered so far stale, once when the write is made and again when its transaction
    has ended (``Database.when_ended``), so an answer read while a write was under way is not kept either.
    An answer is kept only if nothing changed between the question and the answer (``version``).
    Remembering and answering happen in the reactor thread; ``changed`` may be called in any."""

    #: Answers kept at most (the oldest go first).
    SIZE = 20_000

    def __init__(self):
        self._versions = itertools.count(1)  # next() is atomic: changes in two pool threads are both counted
        self.version = next(self._versions)
        self._answers = {}

    def changed(self, db):
        self.version = next(self._versions)
        db.when_ended(self._ended)

    def _ended(self, committed):
        self.version = next(self._versions)

    def get(self, question):
        """The remembered answer, or None."""
        found = self._answers.get(question)
        if found is not None and found[0] == self.version:
            return found[1]
        return None

    def keep(self, question, version, portfolio):
        """Remember ``portfolio`` as the answer to ``question`` asked at ``version`` (if nothing changed since)."""
        if version != self.version:
            return
        self._answers[question] = (version, portfolio)
        if len(self._answers) > self.SIZE:
            del self._answers[next(iter(self._answers))]


class PortfolioStore:
    def __init__(self, db):
        self.db = db
        self.sql = db.sql
        self.remembered = db.shared(Remembered)

    def _changed(self):
        """A portfolio row is being written in this transaction (see Remembered)."""
        self.remembered.changed(self.db)

    def resolve_remembered(self, account_id, wanted=None):
        """``resolve``, answered from memory when it can be (reactor thread): a Portfolio, or a Deferred.  Its
        ``cash`` is None (cash changes with every fill: the book has it)."""
        question = (account_id, _key(name(wanted)) if wanted not in (None, "") else None)
        return self._remembered(question, self.resolve, account_id, wanted)

    def get_remembered(self, portfolio_id):
        """``get``, answered from memory when it can be (reactor thread): a Portfolio (or None), or a Deferred."""
        return self._remembered(("id", portfolio_id), self.get, portfolio_id)

    def _remembered(self, question, read, *args):
        found = self.remembered.get(question)
        if found is not None:
            return found
        version = self.remembered.version

        def keep(portfolio):
            if portfolio is not None:
                portfolio = replace(portfolio, cash=None)
                self.remembered.keep(question, version, portfolio)
            return portfolio

        return self.db.run(read, *args).addCallback(keep)

    # --- reading ----------------------------------------------------------------------

    def _one(self, cursor, where, params):
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM portfolios WHERE {where}"), params)
        row = cursor.fetchone()
        return _portfolio(row) if row else None

    def get(self, cursor, portfolio_id):
        return self._one(cursor, "id = ?", (portfolio_id,))

    def default(self, cursor, account_id):
        """The account's default portfolio (there is always one)."""
        found = self._one(cursor, "account_id = ? AND is_default = 1 AND closed IS NULL", (account_id,))
        if found is None:
            raise UnknownPortfolio("your account has no default portfolio")
        return found

    def by_name(self, cursor, account_id, wanted):
        """The account's open portfolio of that name (any case); UnknownPortfolio if none."""
        wanted = name(wanted)
        found = self._one(cursor, "account_id = ? AND name_key = ? AND closed IS NULL", (account_id, _key(wanted)))
        if found is None:
            raise UnknownPortfolio(f"no portfolio {wanted!r} on your account{self._meant(cursor, account_id, wanted)}")
        return found

    def _meant(self, cursor, account_id, wanted):
        """': did you mean 'Swing'?' when ``wanted`` looks like a typo of one of the account's open portfolios (as a
        mistyped symbol is named with the one meant), else nothing."""
        names = {_key(p.name): p.name for p in self.of_account(cursor, account_id)}
        near = difflib.get_close_matches(_key(wanted), list(names), n=1, cutoff=0.6)
        return f": did you mean {names[near[0]]!r}?" if near else ""

    def resolve(self, cursor, account_id, wanted=None):
        """The portfolio a command names (by name), or the account's default one."""
        if wanted in (None, ""):
            return self.default(cursor, account_id)
        return self.by_name(cursor, account_id, wanted)

    def of_account(self, cursor, account_id, closed=False):
        """The account's portfolios (open ones, or every one with ``closed``), the default first."""
        where = "account_id = ?" + ("" if closed else " AND closed IS NULL")
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM portfolios WHERE {where} ORDER BY is_default DESC, id"),
                       (account_id,))
        return [_portfolio(r) for r in cursor.fetchall()]

    def margin_portfolios(self, cursor):
        """Every open margin portfolio."""
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM portfolios WHERE kind = 'margin' AND closed IS NULL"
                                " ORDER BY id"))
        return [_portfolio(r) for r in cursor.fetchall()]

    def count_open(self, cursor, account_id):
        """How many open portfolios of its own the account has (those it plays games in do not count)."""
        cursor.execute(self.sql("SELECT COUNT(*) FROM portfolios WHERE account_id = ? AND closed IS NULL AND"
                                " game_id IS NULL"), (account_id,))
        return cursor.fetchone()[0]

    def named(self, cursor, account_id, wanted):
        """The name of the account's open portfolio named ``wanted`` (without regard to case), or None."""
        cursor.execute(self.sql("SELECT name FROM portfolios WHERE account_id = ? AND name_key = ? AND"
                                " closed IS NULL"), (account_id, _key(wanted)))
        row = cursor.fetchone()
        return row[0] if row else None

    def owners(self, cursor, portfolio_ids):
        """{portfolio id: account id} for these portfolios."""
        ids = sorted(set(portfolio_ids))
        found = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(f"SELECT id, account_id FROM portfolios WHERE id IN"
                                    f" ({', '.join('?' for _ in part)})"), part)
            found.update(cursor.fetchall())
        return found

    # --- writing ----------------------------------------------------------------------

    def create(self, cursor, account_id, wanted, kind, starting_cash, created, is_default=False, game_id=None,
               portfolio_uuid=None, began=None):
        """A new open portfolio holding ``starting_cash``; InvalidInput if the account has one of that name.
        ``created``: the wall clock's time; ``began``: the market's (None: not known)."""
        wanted = name(wanted)
        if kind not in KINDS:
            raise InvalidInput(f"a portfolio's kind is one of {', '.join(KINDS)}")
        if self.named(cursor, account_id, wanted) is not None:
            raise InvalidInput(f"you already have a portfolio named {wanted!r}")
        self._changed()
        cents = to_cents(starting_cash)
        cursor.execute(self.sql(
            "INSERT INTO portfolios (uuid, account_id, name, name_key, kind, starting_cash_cents, cash_cents,"
            " is_default, generation, created, game_id, began) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
            " RETURNING id"),
            (portfolio_uuid or str(uuid.uuid4()), account_id, wanted, _key(wanted), kind, cents, cents,
             1 if is_default else 0, iso(created), game_id, iso(began) if began is not None else None))
        return self.get(cursor, cursor.fetchone()[0])

    def rename(self, cursor, portfolio, new):
        new = name(new)
        if _key(new) != _key(portfolio.name) and self.named(cursor, portfolio.account_id, new) is not None:
            raise InvalidInput(f"you already have a portfolio named {new!r}")
        self._changed()
        cursor.execute(self.sql("UPDATE portfolios SET name = ?, name_key = ? WHERE id = ?"),
                       (new, _key(new), portfolio.id))
        return self.get(cursor, portfolio.id)

    def set_default(self, cursor, portfolio):
        self._changed()
        cursor.execute(self.sql("UPDATE portfolios SET is_default = 0 WHERE account_id = ?"), (portfolio.account_id,))
        cursor.execute(self.sql("UPDATE portfolios SET is_default = 1 WHERE id = ?"), (portfolio.id,))

    def close(self, cursor, portfolio, when):
        """Close a portfolio (the caller checked it holds nothing); its API keys are revoked."""
        self._changed()
        cursor.execute(self.sql("UPDATE portfolios SET closed = ?, is_default = 0 WHERE id = ?"),
                       (iso(when), portfolio.id))
        cursor.execute(self.sql("SELECT key_id FROM api_keys WHERE portfolio_id = ? AND revoked IS NULL"),
                       (portfolio.id,))
        keys = [r[0] for r in cursor.fetchall()]
        cursor.execute(self.sql("UPDATE api_keys SET revoked = ? WHERE portfolio_id = ? AND revoked IS NULL"),
                       (iso(when), portfolio.id))
        return keys

    def reset(self, cursor, portfolio, when, began=None):
        """Start the portfolio's next generation: no positions, the starting cash, no margin call; dividends
        owed to the old positions are forfeited (marked paid at the reset, with nothing paid).  The caller
        canceled the open orders first.  Orders, transactions and API keys stay.  ``began``: the market's time
        (where the new generation's equity curve starts; None: not known)."""
        self._changed()
        cursor.execute(self.sql("DELETE FROM positions WHERE portfolio_id = ?"), (portfolio.id,))
        cursor.execute(self.sql("UPDATE dividends SET paid = ? WHERE portfolio_id = ? AND paid IS NULL"),
                       (iso(when), portfolio.id))
        cursor.execute(self.sql(
            "UPDATE portfolios SET generation = generation + 1, cash_cents = starting_cash_cents,"
            " margin_call_cents = NULL, margin_call_since = NULL, margin_call_deadline = NULL,"
            " borrow_fee_through = NULL, began = ? WHERE id = ?"),
            (iso(began) if began is not None else None, portfolio.id))
        return self.get(cursor, portfolio.id)

    def set_margin_call(self, cursor, portfolio_id, amount, since, deadline):
        """Record an open margin call (or, with ``amount`` None, end it)."""
        self._changed()
        cursor.execute(self.sql(
            "UPDATE portfolios SET margin_call_cents = ?, margin_call_since = ?, margin_call_deadline = ?"
            " WHERE id = ?"),
            (to_cents(amount) if amount is not None else None, iso(since) if since else None,
             iso(deadline) if deadline else None, portfolio_id))

    def set_configuration(self, cursor, portfolio_id, text):
        """Store the portfolio's configuration (JSON text of papertrader/trading/configuration.py ``stored``)."""
        self._changed()
        cursor.execute(self.sql("UPDATE portfolios SET configuration = ? WHERE id = ?"), (text, portfolio_id))

    def set_borrow_fee_through(self, cursor, portfolio_id, day):
        self._changed()
        cursor.execute(self.sql("UPDATE portfolios SET borrow_fee_through = ? WHERE id = ?"),
                       (day.isoformat(), portfolio_id))

    def holds(self, cursor, portfolio_id):
        """(open orders, positions) the portfolio has."""
        from papertrader.master.order_store import LIVE_STATUSES

        cursor.execute(self.sql("SELECT COUNT(*) FROM orders WHERE portfolio_id = ? AND status IN"
                                f" ({', '.join('?' for _ in LIVE_STATUSES)})"), (portfolio_id,) + LIVE_STATUSES)
        orders = cursor.fetchone()[0]
        cursor.execute(self.sql("SELECT COUNT(*) FROM positions WHERE portfolio_id = ?"), (portfolio_id,))
        return orders, cursor.fetchone()[0]
