#!/usr/bin/env python
"""Leaderboard of a game with many players, recomputed as one update does it.

Pure part (the trading core, no database): ``--players`` (10,000) portfolios, each with cash and
``--positions`` (5) positions among ``--symbols`` (30) symbols, and ``--days`` (20) daily closing
equities.  Timed, ``--repeat`` times each (the best and the median are printed):

- ``baseline: equity only``: the equity of every portfolio at new prices (``margin.value``), nothing
  else — what any update has to do anyway;
- ``update: equity + ranking``: what the master computes per update — the same equities, each player's
  Sharpe ratio from its running sums (``DailyReturns``) with today's point, ``games.leaderboard`` by total
  return and ``rank_by`` Sharpe ratio;
- ``ranking only (by return)``: ``games.leaderboard`` alone, on equities and ratios computed before;
- ``two-pass Sharpe + ranking``: ``games.leaderboard`` computing each ratio by its definition from all the
  daily closes (what the running sums save: it grows with the days).

Database part (``--parts db``; SQLite in a temporary dir, or ``--database postgresql://...`` in a fresh
schema dropped at the end): the same portfolios stored as the master stores them (accounts, portfolios,
positions; one game whose players they are, each with the running sums of ``--days`` daily returns and
yesterday's point, as the master keeps them), then timed:

- ``db baseline: books + equity``: one transaction that loads every player's book (the order store's
  ``books``) and values it — what any ranking needs to read;
- ``db update: the master's update``: ``GameCommands.update`` as the master runs it after a market step:
  the books, the daily points, the ranking by return and by Sharpe ratio, and the writes (each player's
  rank, equity and point of the day), in one transaction.

    .venv/bin/python bench/bench_leaderboard.py
    .venv/bin/python bench/bench_leaderboard.py --players 10000 --days 60
    .venv/bin/python bench/bench_leaderboard.py --parts db --database postgresql://postgres@127.0.0.1:5432/test

The goal (issue 13): a 10,000-player game recomputed in one update in under 1 s.
"""

import argparse
import os
import random
import statistics
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from papertrader.trading import games, margin  # noqa: E402
from papertrader.trading.books import Book, Position  # noqa: E402

D = Decimal


def portfolios(rnd, players, symbols, positions, days, cash):
    names = [f"S{i:03d}" for i in range(symbols)]
    books, curves = [], []
    for i in range(players):
        held = {}
        for symbol in rnd.sample(names, positions):
            quantity = D(rnd.randint(1, 200))
            held[symbol] = Position(symbol, quantity, quantity * D(rnd.randint(1000, 50000)).scaleb(-2))
        books.append(Book(i + 1, D(rnd.randint(0, 1_000_000)).scaleb(-2), held))
        equity, curve = cash, []
        for _ in range(days):
            equity = (equity * D(rnd.randint(9700, 10300)) / D(10000)).quantize(D("0.01"))
            curve.append(equity)
        curves.append(tuple(curve))
    prices = {s: D(rnd.randint(1000, 50000)).scaleb(-2) for s in names}
    return books, curves, prices


def timed(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


async def database_part(reactor, args, books, states, prices, cash, today):
    """The update as the master runs it, on a database; prints its lines."""
    import tempfile
    import uuid as uuids
    from datetime import date, datetime, timedelta, timezone

    from bench.harness import bench_database, drop_schema
    from papertrader.app.games import GameCommands
    from papertrader.logs import LogSystem
    from papertrader.market.board import Quote, QuoteBoard
    from papertrader.master.db import Database
    from papertrader.master.games import GameStore
    from papertrader.master.order_store import OrderStore
    from papertrader.master.portfolios import PortfolioStore
    from papertrader.money import to_cents, to_quantity_units
    from papertrader.times import iso
    from papertrader.trading.games import GameRules
    from papertrader.trading.market import MarketStep

    url, schema, label = bench_database(args.database)
    tmp = tempfile.mkdtemp(prefix="bench-leaderboard-")
    db = Database(url or Database.default_url(tmp), tmp)
    logs = LogSystem("bench", 100, forward=False)
    try:
        await db.migrate()
        now = datetime(today.year, today.month, today.day, 20, tzinfo=timezone.utc)
        start = now - timedelta(days=args.days + 1)
        games = GameStore(db)

        def fill(cursor):
            created = iso(start)
            cursor.execute(db.sql("INSERT INTO accounts (username, username_key, email, password_hash, cash_cents,"
                                  " created, uuid) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                           ("creator", "creator", "c@example.com", None, 0, created, str(uuids.uuid4())))
            creator = cursor.fetchone()[0]
            game = games.create(cursor, creator, "Bench Cup", GameRules(start, now + timedelta(days=30), cash),
                                False, start)
            ids = []
            for i, book in enumerate(books):
                name = f"player{i:05d}"
                cursor.execute(db.sql("INSERT INTO accounts (username, username_key, email, password_hash,"
                                      " cash_cents, created, uuid) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                               (name, name, f"{name}@example.com", None, 0, created, str(uuids.uuid4())))
                account = cursor.fetchone()[0]
                cursor.execute(db.sql(
                    "INSERT INTO portfolios (uuid, account_id, name, name_key, kind, starting_cash_cents, cash_cents,"
                    " is_default, generation, created, game_id) VALUES (?, ?, ?, ?, 'cash', ?, ?, 0, 0, ?, ?)"
                    " RETURNING id"), (str(uuids.uuid4()), account, "Bench Cup", "bench cup", to_cents(cash),
                                      to_cents(book.cash), created, game.id))
                portfolio = cursor.fetchone()[0]
                ids.append(portfolio)
                games.add_player(cursor, game.id, account, portfolio, start)
            cursor.executemany(db.sql("INSERT INTO positions (portfolio_id, symbol, quantity_units, cost_cents)"
                                      " VALUES (?, ?, ?, ?)"),
                               [(pid, p.symbol, to_quantity_units(p.quantity), to_cents(p.cost))
                                for pid, book in zip(ids, books) for p in book.positions.values()])
            cursor.executemany(db.sql(
                "UPDATE game_players SET equity_cents = ?, point_day = ?, previous_cents = ?, returns_count = ?,"
                " returns_sum = ?, returns_squares = ? WHERE portfolio_id = ?"),
                [(to_cents(st.equity), st.day.isoformat(), to_cents(st.previous), st.count, format(st.total, "f"),
                  format(st.squares, "f"), pid) for pid, st in zip(ids, states)])
            cursor.executemany(db.sql("INSERT INTO game_days (portfolio_id, day, time, equity_cents) VALUES"
                                      " (?, ?, ?, ?)"),
                               [(pid, st.day.isoformat(), iso(start), to_cents(st.equity))
                                for pid, st in zip(ids, states)])
            return ids

        began = time.perf_counter()
        ids = await db.run(fill)
        print(f"database: {label}; {len(ids)} players stored in {time.perf_counter() - began:.1f} s")
        board = QuoteBoard(tuple(sorted(prices)))
        board.update([Quote(symbol, price, now) for symbol, price in prices.items()])
        orders = OrderStore(db)
        commands = GameCommands(db, games, PortfolioStore(db), orders, board, None, reactor,
                                logs.logger("bench"))

        def equity_only(cursor):
            loaded = orders.books(cursor, ids)
            return [margin.value(b, prices).equity for b in loaded.values()]

        async def run(fn):
            times = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                await fn()
                times.append(time.perf_counter() - began)
            return min(times), statistics.median(times)

        base = await run(lambda: db.run(equity_only))
        full = await run(lambda: commands.update(MarketStep(now)))
        for name, (best, median) in (("db baseline: books + equity", base), ("db update: the master's update", full)):
            print(f"{name:32s} best {best * 1000:8.1f} ms   median {median * 1000:8.1f} ms")
        rows = await db.query("SELECT COUNT(*) FROM game_players WHERE rank IS NOT NULL")
        print(f"ratio update/baseline            {full[0] / base[0]:.2f}x   ranked {rows[0][0]} players;"
              f" goal: update under 1000 ms: {'met' if full[0] < 1 else 'NOT met'}")
    finally:
        db.close()
        logs.close()
        if schema is not None:
            drop_schema(args.database, schema)
            print(f"dropped schema {schema}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=30)
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--parts", default="pure,db", help="pure, db or both (comma-separated; default both)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) for the db part (default: SQLite"
                             " in a temporary dir)")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",")}
    rnd = random.Random(args.seed)
    cash = D("100000.00")
    books, curves, prices = portfolios(rnd, args.players, args.symbols, args.positions, args.days, cash)
    usernames = [f"player{i:05d}" for i in range(args.players)]

    def equities():
        return [margin.value(b, prices).equity for b in books]

    from datetime import date, timedelta

    today = date(2026, 3, 2) + timedelta(days=args.days)
    states = []  # each player's running sums over the days before today, as the master keeps them
    for curve in curves:
        state = games.DailyReturns(cash)
        for d, equity in enumerate(curve):
            state = state.at(today - timedelta(days=len(curve) - d), equity)
        states.append(state)

    def update():
        """What the master does per update: equities, each player's Sharpe ratio from the running sums with
        today's point, the ranking by return, and the ranks by Sharpe ratio."""
        values = equities()
        sharpes, players = {}, []
        for u, e, state in zip(usernames, values, states):
            sharpes[u] = state.at(today, e).sharpe()
            players.append(games.Player(u, e))
        by_return = games.leaderboard(cash, players, sharpes=sharpes)
        return games.rank_by(by_return, "sharpe")

    values = equities()
    players = [games.Player(u, e, c + (e,)) for u, e, c in zip(usernames, values, curves)]
    fixed = {u: st.at(today, e).sharpe() for u, e, st in zip(usernames, values, states)}
    plain = [games.Player(u, e) for u, e in zip(usernames, values)]

    if "pure" in parts:
        print(f"players {args.players}, {args.positions} positions each of {args.symbols} symbols,"
              f" {args.days} daily closes each (+ today), best/median of {args.repeat}")
        rows = [
            ("baseline: equity only", equities),
            ("update: equity + ranking", update),
            ("ranking only (by return)", lambda: games.leaderboard(cash, plain, sharpes=fixed)),
            ("two-pass Sharpe + ranking", lambda: games.leaderboard(cash, players)),
        ]
        results = {}
        for label, fn in rows:
            best, median, _ = timed(fn, args.repeat)
            results[label] = best
            print(f"{label:28s} best {best * 1000:8.1f} ms   median {median * 1000:8.1f} ms"
                  f"   ({args.players / best:,.0f} players/s)")
        base, full = results["baseline: equity only"], results["update: equity + ranking"]
        print(f"ratio update/baseline        {full / base:.2f}x   goal: update under 1000 ms:"
              f" {'met' if full < 1 else 'NOT met'}")
    if "db" in parts:
        from twisted.internet import defer, task

        task.react(lambda reactor: defer.Deferred.fromCoroutine(
            database_part(reactor, args, books, states, prices, cash, today)))


if __name__ == "__main__":
    main()
