"""The game store: games, their players and each player's daily equity (migration 0010).

A game's rules are a :class:`papertrader.trading.games.GameRules` kept as canonical JSON; each player
plays in a portfolio of their own made when they join (``portfolios.game_id`` points at the game).
Invite codes are random (``secrets``, 80 bits) and only their SHA-256 is kept.

Every function takes a cursor and runs inside the caller's transaction.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional

from papertrader.errors import GameExists, InvalidInput
from papertrader.money import from_cents, to_cents
from papertrader.times import iso, parse_iso
from papertrader.trading.games import DailyReturns, GameRules, closed_up

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{1,38}[A-Za-z0-9_.\-]")
#: Most games listed at once, and most players one game may have.
MAX_LISTED = 200
MAX_PLAYERS = 100_000
#: The most removed players a game's creator is shown (ShowGame).
MAX_REMOVED_SHOWN = 500
SHARPE_UNIT = Decimal("0.0001")
#: Rows one statement writes (SQLite allows 32,766 parameters a statement, PostgreSQL 65,535).
WRITE_CHUNK = 1000

COLUMNS = ("g.id, g.name, g.creator_id, a.username, g.rules, g.private, g.invite_hash, g.created, g.ended_at,"
           " g.finished, g.board_updated, g.show_portfolios")


def name(value):
    """A game's name: 3-40 letters, digits, spaces, '_', '.', '-' (starting with a letter or digit)."""
    value = value.strip() if isinstance(value, str) else ""
    if not NAME_RE.fullmatch(value):
        raise InvalidInput("a game's name is 3-40 characters: letters, digits, spaces, '_', '.', '-'"
                           " (starting with a letter or digit)")
    return value


def key(value):
    return value.casefold()


def new_invite_code():
    """A fresh invite code: 16 characters of base32 (80 random bits), grouped for reading aloud."""
    raw = secrets.token_bytes(10)
    import base64

    text = base64.b32encode(raw).decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def invite_hash(code):
    """What is kept of a code: the SHA-256 of its normalized form (no dashes or spaces, upper case)."""
    normalized = re.sub(r"[\s-]", "", code or "").upper()[:64]
    return hashlib.sha256(normalized.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class Game:
    id: int
    name: str
    creator_id: int
    creator: str
    rules: GameRules
    private: bool
    invite_hash: Optional[str]
    created: datetime
    ended_at: Optional[datetime] = None
    finished: Optional[datetime] = None
    board_updated: Optional[datetime] = None
    #: Whether its players may see each other's portfolios (migration 0014); its creator always may.
    show_portfolios: bool = False

    def over(self, now):
        """Whether the game is over for its ranking: finished, ended by its creator, or past its end (its final
        ranking is the last update's before then, even before the next update marks it finished)."""
        return self.finished is not None or self.ended_at is not None or now > self.rules.end

    def status(self, now):
        if self.finished is not None or now >= self.rules.closes(self.ended_at):
            return "ended"
        return "open" if now >= self.rules.start else "upcoming"


@dataclass(frozen=True)
class Membership:
    """A player of a game, as the trading checks need it."""

    game: Game
    account_id: int
    portfolio_id: int
    removed: Optional[datetime]


def _time(text):
    return parse_iso(text) if text else None


def _game(row):
    return Game(id=row[0], name=row[1], creator_id=row[2], creator=row[3], rules=GameRules.from_json(row[4]),
                private=bool(row[5]), invite_hash=row[6], created=parse_iso(row[7]), ended_at=_time(row[8]),
                finished=_time(row[9]), board_updated=_time(row[10]), show_portfolios=bool(row[11]))


class GameStore:
    def __init__(self, db):
        self.db = db
        self.sql = db.sql

    def _select(self, cursor, where, params, suffix=""):
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM games g JOIN accounts a ON a.id = g.creator_id"
                                f" WHERE {where} {suffix}"), params)
        return [_game(r) for r in cursor.fetchall()]

    # --- games ------------------------------------------------------------------------

    def create(self, cursor, creator_id, wanted, rules: GameRules, private, created, code_hash=None,
               show_portfolios=False):
        wanted = name(wanted)
        cursor.execute(self.sql("SELECT 1 FROM games WHERE name_key = ?"), (key(wanted),))
        if cursor.fetchone():
            raise GameExists(f"a game named {wanted!r} already exists; choose another name")
        cursor.execute(self.sql(
            "INSERT INTO games (name, name_key, creator_id, starts, ends, starting_cash_cents, rules, private,"
            " invite_hash, created, show_portfolios) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            (wanted, key(wanted), creator_id, iso(rules.start), iso(rules.end), to_cents(rules.starting_cash),
             rules.to_json(), 1 if private else 0, code_hash, iso(created), 1 if show_portfolios else 0))
        return self.get(cursor, cursor.fetchone()[0])

    def get(self, cursor, game_id):
        found = self._select(cursor, "g.id = ?", (game_id,))
        return found[0] if found else None

    def by_name(self, cursor, wanted):
        """The game of that name (any case), or None."""
        if not isinstance(wanted, str) or len(wanted) > 64:
            return None
        found = self._select(cursor, "g.name_key = ?", (key(wanted.strip()),))
        return found[0] if found else None

    def set_invite(self, cursor, game_id, code_hash):
        cursor.execute(self.sql("UPDATE games SET invite_hash = ? WHERE id = ?"), (code_hash, game_id))

    def end(self, cursor, game_id, when):
        cursor.execute(self.sql("UPDATE games SET ended_at = ? WHERE id = ? AND ended_at IS NULL"),
                       (iso(when), game_id))

    def finish(self, cursor, game_id, when):
        cursor.execute(self.sql("UPDATE games SET finished = ? WHERE id = ?"), (iso(when), game_id))

    def visible(self, cursor, account_id, limit=MAX_LISTED):
        """Games this account may see: public ones, its own, and those it plays in; newest first."""
        return self._select(
            cursor, "g.private = 0 OR g.creator_id = ? OR g.id IN (SELECT p.game_id FROM game_players p WHERE"
            " p.account_id = ? AND p.removed IS NULL)", (account_id, account_id), f"ORDER BY g.id DESC LIMIT {limit}")

    def to_update(self, cursor, now):
        """Games whose leaderboard the next update computes: started, not finished."""
        return self._select(cursor, "g.finished IS NULL AND g.starts <= ?", (iso(now),), "ORDER BY g.id")

    # --- players ------------------------------------------------------------------------

    def membership(self, cursor, game, account_id):
        cursor.execute(self.sql("SELECT portfolio_id, removed FROM game_players WHERE game_id = ? AND"
                                " account_id = ?"), (game.id, account_id))
        row = cursor.fetchone()
        return Membership(game, account_id, row[0], _time(row[1])) if row else None

    def of_portfolios(self, cursor, portfolio_ids):
        """{portfolio id: Membership} for those of these portfolios that are in a game."""
        ids = sorted(set(portfolio_ids))
        rows = []
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(
                "SELECT p.portfolio_id, p.game_id, p.account_id, p.removed FROM game_players p WHERE"
                f" p.portfolio_id IN ({', '.join('?' for _ in part)})"), part)
            rows += cursor.fetchall()
        games = {}
        out = {}
        for portfolio_id, game_id, account_id, removed in rows:
            if game_id not in games:
                games[game_id] = self.get(cursor, game_id)
            out[portfolio_id] = Membership(games[game_id], account_id, portfolio_id, _time(removed))
        return out

    def count_players(self, cursor, game_id):
        cursor.execute(self.sql("SELECT COUNT(*) FROM game_players WHERE game_id = ? AND removed IS NULL"),
                       (game_id,))
        return cursor.fetchone()[0]

    def add_player(self, cursor, game_id, account_id, portfolio_id, joined):
        cursor.execute(self.sql("INSERT INTO game_players (game_id, account_id, portfolio_id, joined)"
                                " VALUES (?, ?, ?, ?)"), (game_id, account_id, portfolio_id, iso(joined)))

    def removed_players(self, cursor, game_id, limit=MAX_REMOVED_SHOWN):
        """[(username, when removed)] of the game's removed players, first removed first: at most ``limit``."""
        cursor.execute(self.sql(
            "SELECT a.username, p.removed FROM game_players p JOIN accounts a ON a.id = p.account_id WHERE"
            " p.game_id = ? AND p.removed IS NOT NULL ORDER BY p.removed, a.username LIMIT ?"), (game_id, int(limit)))
        return [(r[0], parse_iso(r[1])) for r in cursor.fetchall()]

    def remove_player(self, cursor, game_id, account_id, when):
        """Mark the player removed and close up the stored leaderboard's ranks behind them (at once: the game
        may end before the next update ranks it again)."""
        cursor.execute(self.sql("UPDATE game_players SET removed = ?, rank = NULL, rank_sharpe = NULL WHERE"
                                " game_id = ? AND account_id = ?"), (iso(when), game_id, account_id))
        cursor.execute(self.sql("SELECT account_id, rank, rank_sharpe FROM game_players WHERE game_id = ? AND"
                                " removed IS NULL AND rank IS NOT NULL"), (game_id,))
        rows = cursor.fetchall()
        ranks, by_sharpe = closed_up([r[1] for r in rows]), closed_up([r[2] for r in rows])
        changed = [(rank, sharpe, game_id, row[0]) for row, rank, sharpe in zip(rows, ranks, by_sharpe)
                   if (rank, sharpe) != (row[1], row[2])]
        if changed:
            cursor.executemany(self.sql("UPDATE game_players SET rank = ?, rank_sharpe = ? WHERE game_id = ? AND"
                                        " account_id = ?"), changed)

    def players(self, cursor, game_id):
        """[(account id, username, portfolio id)] of the game's players (not removed), by username."""
        cursor.execute(self.sql(
            "SELECT p.account_id, a.username, p.portfolio_id FROM game_players p JOIN accounts a ON"
            " a.id = p.account_id WHERE p.game_id = ? AND p.removed IS NULL ORDER BY a.username"), (game_id,))
        return cursor.fetchall()

    # --- the leaderboard ----------------------------------------------------------------

    def returns(self, cursor, game):
        """[(account id, username, portfolio id, DailyReturns)] of the game's players (not removed)."""
        from datetime import date

        cursor.execute(self.sql(
            "SELECT p.account_id, a.username, p.portfolio_id, p.point_day, p.equity_cents, p.previous_cents,"
            " p.returns_count, p.returns_sum, p.returns_squares, p.returns_broken FROM game_players p JOIN accounts a"
            " ON a.id = p.account_id WHERE p.game_id = ? AND p.removed IS NULL ORDER BY a.username"), (game.id,))
        cash = game.rules.starting_cash
        out = []
        for account_id, username, portfolio_id, day, equity, previous, count, total, squares, broken in \
                cursor.fetchall():
            state = DailyReturns(
                previous=from_cents(previous) if previous is not None else cash, count=count, total=Decimal(total),
                squares=Decimal(squares), day=date.fromisoformat(day) if day else None,
                equity=from_cents(equity) if day and equity is not None else None, broken=bool(broken))
            out.append((account_id, username, portfolio_id, state))
        return out

    def books(self, cursor, game):
        """{portfolio id: Book} of the game's players (not removed), in one query (the order store's ``books``
        reads any portfolios, in chunks).  Margin terms are left out: a leaderboard only values books."""
        from papertrader.money import from_quantity_units
        from papertrader.trading.books import Book, Position

        cursor.execute(self.sql(
            "SELECT p.portfolio_id, f.cash_cents, s.symbol, s.quantity_units, s.cost_cents FROM game_players p"
            " JOIN portfolios f ON f.id = p.portfolio_id LEFT JOIN positions s ON s.portfolio_id = p.portfolio_id"
            " WHERE p.game_id = ? AND p.removed IS NULL"), (game.id,))
        cash, positions = {}, {}
        for portfolio_id, cents, symbol, quantity, cost in cursor.fetchall():
            if portfolio_id not in cash:
                cash[portfolio_id] = from_cents(cents)
                positions[portfolio_id] = {}
            if symbol is not None:
                positions[portfolio_id][symbol] = Position(symbol, from_quantity_units(quantity), from_cents(cost))
        return {pid: Book(pid, cash[pid], positions[pid]) for pid in cash}

    def save_board(self, cursor, game_id, rows, time):
        """Store a leaderboard: ``rows`` are (portfolio id, rank, rank by sharpe, sharpe or None, DailyReturns
        after this point); each player's point of the day (in ``game_days``) becomes this equity."""
        # psycopg sends an executemany's statements pipelined; the points go many rows a statement.
        columns = [("rank", "INTEGER"), ("rank_sharpe", "INTEGER"), ("equity_cents", "BIGINT"),
                   ("sharpe_units", "BIGINT"), ("point_day", "TEXT"), ("previous_cents", "BIGINT"),
                   ("returns_count", "INTEGER"), ("returns_sum", "TEXT"), ("returns_squares", "TEXT"),
                   ("returns_broken", "INTEGER")]
        values = [(portfolio_id, rank, rank_sharpe, to_cents(state.equity),
                   int(sharpe / SHARPE_UNIT) if sharpe is not None else None, state.day.isoformat(),
                   to_cents(state.previous), state.count, format(state.total, "f"), format(state.squares, "f"),
                   1 if state.broken else 0)
                  for portfolio_id, rank, rank_sharpe, sharpe, state in rows]
        assignments = ", ".join(f"{name} = ?" for name, _ in columns)
        cursor.executemany(self.sql(f"UPDATE game_players SET {assignments} WHERE portfolio_id = ?"),
                           [r[1:] + r[:1] for r in values])
        time = iso(time)
        points = [(r[0], r[4].day.isoformat(), time, to_cents(r[4].equity)) for r in rows]
        for chunk in range(0, len(points), WRITE_CHUNK):
            part = points[chunk:chunk + WRITE_CHUNK]
            cursor.execute(self.sql(
                "INSERT INTO game_days (portfolio_id, day, time, equity_cents) VALUES"
                f" {', '.join('(?, ?, ?, ?)' for _ in part)} ON CONFLICT (portfolio_id, day) DO UPDATE SET"
                " time = excluded.time, equity_cents = excluded.equity_cents"), [x for p in part for x in p])
        cursor.execute(self.sql("UPDATE games SET board_updated = ? WHERE id = ?"), (time, game_id))

    def board(self, cursor, game_id, by="return", limit=MAX_PLAYERS, offset=0):
        """The stored leaderboard: [(rank, username, equity, sharpe or None)], first place first: ``limit`` of
        them from the ``offset``-th.  Within a tie, by the other figure, then by username, as ``rank_by`` orders
        them (papertrader/trading/games.py; every player started with the same cash: the higher return is the
        higher equity)."""
        order = ("p.rank, p.sharpe_units IS NULL, p.sharpe_units DESC" if by == "return" else
                 "p.rank_sharpe, p.equity_cents DESC")
        cursor.execute(self.sql(
            "SELECT p.rank, p.rank_sharpe, a.username, p.equity_cents, p.sharpe_units FROM game_players p"
            " JOIN accounts a ON a.id = p.account_id WHERE p.game_id = ? AND p.removed IS NULL AND p.rank IS NOT"
            f" NULL ORDER BY {order}, a.username LIMIT ? OFFSET ?"), (game_id, int(limit), int(offset)))
        return [(r[0] if by == "return" else r[1], r[2], from_cents(r[3]),
                 (Decimal(r[4]) * SHARPE_UNIT).quantize(SHARPE_UNIT) if r[4] is not None else None)
                for r in cursor.fetchall()]

    def standing(self, cursor, game_id, account_id):
        """(rank, equity) of a player on the stored leaderboard, or None if it does not rank them."""
        cursor.execute(self.sql("SELECT rank, equity_cents FROM game_players WHERE game_id = ? AND account_id = ?"
                                " AND removed IS NULL AND rank IS NOT NULL"), (game_id, account_id))
        row = cursor.fetchone()
        return (row[0], from_cents(row[1])) if row else None

    def unranked(self, cursor, game_id, limit):
        """Usernames of the game's players the stored leaderboard does not rank yet (they joined since its last
        update, or it has none), by username: at most ``limit``."""
        cursor.execute(self.sql(
            "SELECT a.username FROM game_players p JOIN accounts a ON a.id = p.account_id WHERE p.game_id = ? AND"
            " p.removed IS NULL AND p.rank IS NULL ORDER BY a.username_key LIMIT ?"), (game_id, int(limit)))
        return [r[0] for r in cursor.fetchall()]

    def curve(self, cursor, portfolio_id):
        """[(day, equity)] of a player, oldest first."""
        cursor.execute(self.sql("SELECT day, equity_cents FROM game_days WHERE portfolio_id = ? ORDER BY day"),
                       (portfolio_id,))
        from datetime import date

        return [(date.fromisoformat(d), from_cents(c)) for d, c in cursor.fetchall()]
