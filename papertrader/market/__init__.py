"""Market data: where bars come from, the market clock and calendar, and the update loop.

- :mod:`.calendar` — trading sessions (an exchange's, from ``exchange_calendars``, or always open);
- :mod:`.clock` — market time and where it stands in the calendar;
- :mod:`.board` — the newest quote of every asset, in memory;
- :mod:`.simulated` — a seeded random-walk source of honest bars;
- :mod:`.alpaca` — live one-minute bars, assets and corporate actions from Alpaca's Market Data API;
- :mod:`.nasdaq` — last prices from nasdaq.com's unofficial quote endpoint (keyless, opt-in only);
- :mod:`.http` and :mod:`.answers` — what the live sources share: deadlines, back-off, rate limits,
  the outage state, and strict reading of what a provider answered;
- :mod:`.service` — the LoopingCall that fetches bars every update interval and hands the
  step to its listeners (the push to the workers, then the trading step).

It knows nothing of accounts or orders.
"""
