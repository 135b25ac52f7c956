"""The trading core: orders, books, bars, fills and the rules that connect them.

Plain Python and ``decimal`` only: no Twisted, no SQL, no clock reads (time is
always an argument).  Every rule a trader could argue about lives here, once:

- :mod:`.orders` — order requests and orders (type, side, time in force, status);
- :mod:`.market` — bars, trading sessions and one market step;
- :mod:`.books` — an account's cash and positions, and what a fill does to them;
- :mod:`.events` — what happens to an order (accepted, fills, cancels, ...);
- :mod:`.fill_models` and :mod:`.commissions` — how a bar prices a fill, what it costs;
- :mod:`.pretrade` — the checks a new order passes (buying power counts open orders);
- :mod:`.amend` — cancel and replace;
- :mod:`.step` — one market step over every open order: new books plus events.

The master's stores load books and open orders, call these functions, and save
what they return in one transaction.
"""
