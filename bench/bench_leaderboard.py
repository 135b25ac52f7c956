#!/usr/bin/env python
"""Leaderboard of a game with many players, recomputed as one update does it.

Pure part (the trading core, no database): ``--players`` (10,000) portfolios, each with cash and
``--positions`` (5) positions among ``--symbols`` (30) symbols, and ``--days`` (20) daily closing
equities.  Timed, ``--repeat`` times each (the best and the median are printed):

- ``baseline: equity only``: the equity of every portfolio at new prices (``margin.value``), nothing
  else — what any update has to do anyway;
- ``update: equity + ranking``: the same equities, then ``games.leaderboard`` by total return (with the
  Sharpe ratio of each player's daily returns computed for display) — one leaderboard update;
- ``ranking only``: ``games.leaderboard`` alone, on equities computed before;
- ``ranking by sharpe``: ``games.leaderboard(by="sharpe")`` alone.

    .venv/bin/python bench/bench_leaderboard.py
    .venv/bin/python bench/bench_leaderboard.py --players 10000 --days 60

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=30)
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rnd = random.Random(args.seed)
    cash = D("100000.00")
    books, curves, prices = portfolios(rnd, args.players, args.symbols, args.positions, args.days, cash)
    usernames = [f"player{i:05d}" for i in range(args.players)]

    def equities():
        return [margin.value(b, prices).equity for b in books]

    def update():
        values = equities()
        players = [games.Player(u, e, c + (e,)) for u, e, c in zip(usernames, values, curves)]
        return games.leaderboard(cash, players)

    values = equities()
    players = [games.Player(u, e, c + (e,)) for u, e, c in zip(usernames, values, curves)]

    print(f"players {args.players}, {args.positions} positions each of {args.symbols} symbols,"
          f" {args.days} daily closes each (+ today), best/median of {args.repeat}")
    rows = [
        ("baseline: equity only", equities),
        ("update: equity + ranking", update),
        ("ranking only (by return)", lambda: games.leaderboard(cash, players)),
        ("ranking only (by sharpe)", lambda: games.leaderboard(cash, players, by="sharpe")),
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


if __name__ == "__main__":
    main()
