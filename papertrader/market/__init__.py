"""Market data: where bars come from, the market clock and calendar, and the update loop.

- :mod:`.calendar` — trading sessions (an exchange's, from ``exchange_calendars``, or always open);
- :mod:`.clock` — market time and where it stands in the calendar;
- :mod:`.board` — the newest quote of every asset, in memory;
- :mod:`.simulated` — a seeded random-walk source of honest bars;
- :mod:`.service` — the LoopingCall that fetches bars every update interval and hands the
  step to its listeners (the push to the workers, then the trading step).

It knows nothing of accounts or orders.
"""
