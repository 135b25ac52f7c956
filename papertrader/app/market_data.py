"""Market-data commands the master answers: candles and the market clock (quotes come from a worker's cache)."""

import re
import uuid
from datetime import date, datetime, time, timedelta, timezone

from twisted.internet import defer

from papertrader.app import api_keys_too, authenticated
from papertrader.errors import InvalidInput, NotPermitted, QuoteUnavailable
from papertrader.master import validation
from papertrader.market.periods import MINUTE_BUCKETS, MOST_DAYS, PERIODS, fold, next_period, period_start
from papertrader.market.sources import asset_uuid
from papertrader.master.candles import INTERVALS
from papertrader import times
from papertrader.times import EARLIEST, LATEST, local_midnight
from papertrader.trading.corporate import ADJUSTMENTS, Dividend, adjust_bar, adjustment_factors

#: Most candles one answer holds (fewer if they do not fit one AMP value: page on with --start).
MAX_CANDLES = 1000
#: Most sessions of one calendar answer (fits one AMP value).
MAX_SESSIONS = 600
#: The days a calendar answer may cover, as Alpaca's calendar does (1970-2029): [first, end).
CALENDAR_FIRST = datetime(1970, 1, 1, tzinfo=timezone.utc)
CALENDAR_END = datetime(2030, 1, 1, tzinfo=timezone.utc)
#: How many days of sessions are looked up at a time.
CALENDAR_WINDOW = timedelta(days=700)
#: Most assets of one answer (fits one AMP value: page on with ``after``).
MAX_ASSETS = 200
#: Most symbols one market-data request names.
MAX_SYMBOLS = 200
#: Corporate-action answers kept for adjusting bars, and closes before ex-dates.
ACTIONS_CACHED = 64
CLOSES_CACHED = 100_000
#: Most corporate actions of one answer (fits one AMP value), the assets they are read of without symbols
#: named, and how long before its process date an action's own day may be (a dividend's ex-date before its pay).
MAX_ACTIONS = 200
ACTION_KINDS = ("forward_split", "reverse_split", "cash_dividend")
MAX_ACTION_ASSETS = 500
ACTION_LOOKBACK = timedelta(days=120)
#: What an account the operator allows (``market_control``) may do to a replay's clock, as ``papertrader-admin
#: market`` does; and the seconds after which its step plays no more updates and answers (with ``played``), well
#: before the workers' and the command line's 30-second wait for an answer.
MARKET_ACTIONS = ("status", "pause", "resume", "step", "seek")
STEP_BUDGET = 20

#: What a symbol may look like (letters, digits, '.', '-', '/'), before it is looked up.
SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9./\-]{0,15}")


class MarketDataCommands:
    def __init__(self, board, candles, market_clock, source=None, margin=None, controllers=(), control=None):
        self.board = board
        #: The usernames (lower case) that may move a replay's clock (``market_control``), and what moves it:
        #: MarketService.control.
        self.controllers = frozenset(name.lower() for name in controllers)
        self.control = control
        #: The deployment's MarginRules when margin portfolios are offered (assets are then marginable and
        #: shortable), else None.
        self.margin = margin
        self.candles_store = candles
        self.market_clock = market_clock
        self.source = source
        #: Corporate actions read to adjust bars, by (symbols, first day, last day): a provider's answer is read
        #: once for a run of pages, not once per page.  And the close before each dividend's ex-date.
        self._actions_cache = {}
        self._closes_before = {}

    @property
    def daily_only(self):
        """Whether the market is a replay that plays whole sessions: it makes daily bars only (no minutes)."""
        return getattr(self.market_clock, "step_text", None) == "1d"

    @property
    def default_interval(self):
        """Daily candles for a replay that plays whole sessions, minute candles otherwise."""
        return "1d" if self.daily_only else "1m"

    def _refuse_intraday(self, interval, asked, instead):
        """On a replay of whole sessions, refuse a candle ``interval`` shorter than a day (``asked``: how the
        request named it), saying to ask for ``instead``: none would ever come.  The words are the HTTP API's
        for portfolio history (papertrader/worker/http/rest.py)."""
        if self.daily_only and INTERVALS[interval] is not None:
            raise InvalidInput(f"{asked} needs intraday prices, and this market is a replay of whole sessions"
                               f" (replay_step 1d: daily bars only); use {instead}")

    def day_start(self):
        """The start of the market's current day in its calendar's time zone (New York for an exchange's
        calendar, UTC for always_open), as a UTC time."""
        local = self.market_clock.now().astimezone(self._zone())
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)

    @defer.inlineCallbacks
    def candles(self, stamp, symbol, limit, interval=None, start=None, end=None):
        symbol = validation.symbol(symbol, self.board.assets, self.board.get)
        validation.limit(limit, MAX_CANDLES)
        interval = interval or self.default_interval
        if interval not in INTERVALS:
            raise InvalidInput(f"interval must be one of {', '.join(INTERVALS)}")
        self._refuse_intraday(interval, f"interval {interval}", "--interval 1d")
        if start is not None and end is not None and end <= start:
            raise InvalidInput("the end must come after the start")
        candles = yield self.candles_store.read(symbol, interval, limit, start, end)
        return {"candles": candles, "interval": interval}

    def clock(self, stamp):
        answer = self.market_clock.describe()
        if self.source is not None:
            state = getattr(self.source, "state", "ok")
            answer["source"] = self.source.name + ("" if state == "ok" else f" ({state})")
        return answer

    @api_keys_too
    @authenticated
    @defer.inlineCallbacks
    def market_control(self, session, stamp, action, when=None):
        """Pause, resume, step or seek a replay (or its status), for an account ``market_control`` names: a
        backtest in lockstep with its strategy.  Answers the clock, as ``clock``."""
        if action not in MARKET_ACTIONS:
            raise InvalidInput(f"the market commands are {', '.join(MARKET_ACTIONS[:-1])} and {MARKET_ACTIONS[-1]}")
        if action == "status":  # anyone's: it is the clock
            return self.clock(stamp)
        if session.username.lower() not in self.controllers or self.control is None:
            raise NotPermitted("your account may not move the market's clock: the operator names the accounts that"
                               " may in the setting market_control")
        if when is not None and action not in ("step", "seek"):
            raise InvalidInput(f"market {action} takes no argument")
        if when is not None and len(when) > 32:
            raise InvalidInput("a step's count or a seek's day is at most 32 characters")
        if action == "seek" and not when:
            raise InvalidInput("seek needs a day: YYYY-MM-DD")
        done = yield self.control(action, when or None, by=session.username, budget=STEP_BUDGET)
        answer = self.clock(stamp)
        if "played" in done:
            answer["played"] = done["played"]
        return answer

    def calendar(self, stamp, start=None, end=None):
        """The sessions between two days (default: from today to the end of next month), at most
        ``MAX_SESSIONS`` (ask again from the day after the last).  Only the days of Alpaca's calendar
        (1970-2029) are looked at, and only the sessions the loaded calendar holds are listed: a replay's
        calendar covers the years around its history (papertrader/market/setup.py), so a range beyond them
        lists the days inside them only (none if none)."""
        start = start or self.day_start()
        if end is None:  # (a start past the calendar's years lists nothing: none of its 62 days, beyond 9999 too)
            end = start + timedelta(days=62) if start < CALENDAR_END else start
        if end < start:
            raise InvalidInput("the end must not come before the start")
        # Up to the end's day included: bounded first, as the day after 9999-12-31 is no date.
        start, end = max(start, CALENDAR_FIRST), min(end, CALENDAR_END - timedelta(days=1)) + timedelta(days=1)
        calendar = self.market_clock.calendar
        sessions = []
        # A window at a time, so the always-open calendar never builds more than one window of sessions.
        while start < end and len(sessions) < MAX_SESSIONS:
            window = min(end, start + CALENDAR_WINDOW)
            sessions.extend(calendar.sessions(start, window)[:MAX_SESSIONS - len(sessions)])
            start = window
        return {"sessions": [dict(date=calendar.date_of(s).isoformat(), open=s.open, close=s.close)
                             for s in sessions], "timezone": times.zone_name(self.market_clock)}

    def asset_list(self, stamp, symbol=None, after=None, limit=None):
        """The traded assets, as the source describes them, by symbol: ``symbol`` just that one; else at most
        ``limit`` (1-200, default 200) of those after the symbol ``after``.  An asset of a replay that has no
        price yet (one listed later: before its first day, and on it until its first bar) is ``inactive`` and
        not ``tradable``, as its orders are refused ("does not trade yet", app/trading.py ``_check_asset``;
        then "no price is known yet"), and so is one the source does not list while it has no price (its orders are
        refused as an unknown symbol); every other is ``active``."""
        symbols = sorted(self.board.assets)
        if symbol is not None:
            symbols = [validation.symbol(symbol, self.board.assets, self.board.get)]
        else:
            validation.limit(limit or MAX_ASSETS, MAX_ASSETS)
            if after is not None:
                symbols = [s for s in symbols if s > after[:32]]
            symbols = symbols[:limit or MAX_ASSETS]
        out = []
        for s in symbols:
            info = self.board.info[s]
            quote = self.board.get(s)
            # (A source that cannot tell an asset's first day, a live one, is never waiting for it: an order of
            # an asset it has no price of yet is refused for now, after a restart, until the next update.)
            waiting = info.first_day is not None and quote is None
            unpriced = waiting or (s in self.board.unlisted and quote is None)
            asset = dict(id=asset_uuid(s), symbol=s, name=info.name or s, exchange=info.exchange or "",
                         asset_class=info.asset_class or "us_equity", tradable=info.tradable and not unpriced,
                         status="inactive" if unpriced else "active", fractionable=info.fractionable,
                         marginable=self.margin is not None, shortable=self.margin is not None,
                         maintenance_margin=(self.margin.maintenance_long * 100 if self.margin else None),
                         price=quote.price if quote else None,
                         previous_close=quote.previous_close if quote else None,
                         first_day=info.first_day.isoformat() if waiting else None)
            out.append({k: v for k, v in asset.items() if v is not None})
        return {"assets": out}

    def _known(self, symbols):
        """The traded ones of ``symbols`` (sorted, without repeats); a malformed symbol is an error, one that is
        simply not traded here is left out (as Alpaca's market data leaves out symbols it has no data of)."""
        if not symbols or len(symbols) > MAX_SYMBOLS:
            raise InvalidInput(f"give 1 to {MAX_SYMBOLS} symbols")
        known = set()
        for s in symbols:
            s = (s or "").strip().upper()
            if not SYMBOL_RE.fullmatch(s):
                shown = s if len(s) <= 16 else s[:16] + "..."
                raise InvalidInput(f"invalid symbol {shown!r}")
            if s in self.board.info:
                known.add(s)
        return sorted(known)

    @defer.inlineCallbacks
    def bars(self, stamp, symbols, timeframe, start=None, end=None, limit=None, page_token=None, sort=None,
             adjustment=None, start_day=None, end_day=None):
        """Bars of several symbols, sorted by symbol then time (``sort`` desc: each symbol's newest first), at
        most ``limit`` (1-10000) in all; the next page starts after ``page_token`` (symbol and time of the last
        bar given).  From ``start`` (default: the start of the market's day in its calendar's time zone, as
        Alpaca's: New York) to ``end``, both included, as Alpaca's.  A bar of a day or longer is stamped, as
        Alpaca's, at midnight of its (first) day in the market's time zone (kept at its session's open), and
        ``start`` and ``end`` are compared with that stamp.  ``start_day``, ``end_day`` (YYYY-MM-DD, instead):
        from that day's start, through its end, in the market's time zone.  Symbols not traded here are left
        out.  Intraday timeframes of a replay of whole sessions are refused (it has daily bars only).
        ``adjustment`` (``raw``, the default; ``split``, ``dividend``, ``all``): prices and volumes adjusted
        for the splits and dividends after each bar, up to the market's day (never one a replay has not
        reached), as Alpaca adjusts them."""
        if adjustment not in (None,) + ADJUSTMENTS:
            raise InvalidInput(f"adjustment must be one of {', '.join(ADJUSTMENTS)}")
        period = PERIODS.get(timeframe)  # weeks and months: folded from daily bars (adjusted first)
        interval = "1d" if period is not None else BAR_TIMEFRAMES.get(timeframe)
        if interval is None:
            raise InvalidInput(f"timeframe must be one of {', '.join(list(BAR_TIMEFRAMES) + list(PERIODS))}")
        self._refuse_intraday(interval, f"timeframe {timeframe}", "timeframe=1Day")
        wanted = self._known(symbols)
        limit = limit or 1000
        validation.limit(limit, 10_000)
        if sort not in (None, "asc", "desc"):
            raise InvalidInput("sort must be asc or desc")
        newest_first = sort == "desc"
        zone = self._zone()
        if start_day is not None:
            start = local_midnight(_day("start", start_day), zone)
        if end_day is not None:
            end = local_midnight(_day("end", end_day) + timedelta(days=1), zone) - timedelta(microseconds=1)
        if start is None:
            start = self.day_start()
        if end is not None and end < start:
            raise InvalidInput("the end must not come before the start")
        daily = INTERVALS[interval] is None
        if daily:  # the days whose midnight is in [start, end]: from the first such midnight to the next day's
            start = _midnight_from(start, zone)
            end = end and _midnight_from(end + timedelta(microseconds=1), zone)
        elif end is not None:  # (a bar stamped at the end is included)
            end += timedelta(microseconds=1)
        after_symbol, after_time = None, None
        if page_token:
            after_symbol, after_time = _page_token(page_token)
        out, left, more = [], limit, None
        for symbol in wanted:
            if after_symbol is not None and symbol < after_symbol:
                continue
            first, last = start, end
            if symbol == after_symbol:
                if newest_first:
                    last = after_time
                elif period is not None:  # after the whole period of the last bar given
                    first = next_period(after_time, *period, self._zone())
                else:  # after the whole bucket of the last bar given (5Min and longer fold minutes)
                    first = after_time + (timedelta(minutes=INTERVALS[interval]) if INTERVALS[interval]
                                          else timedelta(microseconds=1))
            if last is not None and last <= first:
                continue
            if period is not None:
                candles = yield self._periods(symbol, period, left + 1, first, last, newest_first, adjustment)
            else:
                candles = yield self.candles_store.read(symbol, interval, left + 1, first, last, newest=newest_first)
            if newest_first:
                candles.reverse()
            for c in candles[:left]:
                out.append(dict(c, symbol=symbol))
            if len(candles) > left:
                more = out[-1]
                break
            left -= len(candles)
            if left <= 0:
                more = out[-1] if out else None
                break
        if more is not None:
            more = f"{more['symbol']}|{more['time'].isoformat()}"
        if adjustment not in (None, "raw") and out and period is None:
            out = yield self._adjusted(out, adjustment)
        if daily:
            out = [_at_midnight(b, zone) for b in out]
        answer = {"bars": out}
        if more is not None:
            answer["next_page_token"] = more
        return answer

    @defer.inlineCallbacks
    def _periods(self, symbol, period, wanted, first, last, newest_first, adjustment):
        """Up to ``wanted`` bars of ``period`` (unit, count) of ``symbol``, oldest first: the first ones from
        ``first`` (or, ``newest_first``, the newest ones), before ``last``.  Only whole periods that begin at
        or after ``first``, as Alpaca gives a bar whose time is at or after ``start``; each folded from daily
        bars adjusted first (a split in mid-week adjusts the days before it only)."""
        zone = self._zone()
        rows = (wanted + 1) * MOST_DAYS[period[0]] * period[1]
        days = yield self.candles_store.read(symbol, "1d", rows, period_start(first, *period, zone), last,
                                             newest=newest_first)
        if adjustment not in (None, "raw") and days:
            days = yield self._adjusted([dict(d, symbol=symbol) for d in days], adjustment)
            days = [{k: v for k, v in d.items() if k != "symbol"} for d in days]
        folded = fold(days, *period, zone)
        if len(days) >= rows:  # the read stopped inside a period: the oldest (newest first) or newest is cut
            folded = folded[1:] if newest_first else folded[:-1]
        folded = [b for b in folded if b["time"] >= first]
        return folded[-wanted:] if newest_first else folded[:wanted]

    def _zone(self):
        """The market calendar's time zone (New York for an exchange's calendar, UTC for always_open)."""
        return times.market_zone(self.market_clock)

    @defer.inlineCallbacks
    def _adjusted(self, bars, kinds):
        """``bars`` adjusted for the corporate actions after each (papertrader/trading/corporate.py), up to the
        newest session that has played (its actions are applied when it plays: a replay waiting at the next
        session's open has not applied that session's split yet, and neither do its bars)."""
        today = self._played_day()
        first = min(b["time"] for b in bars).date()
        if self.source is None or first >= today:
            return bars
        actions = yield self._corporate_actions(sorted({b["symbol"] for b in bars}), first, today,
                                                "to adjust these bars by", "try again, or ask for raw bars")
        closes = {}
        for action in actions:
            if isinstance(action, Dividend) and kinds in ("dividend", "all"):
                known = (action.symbol, action.ex_date)
                if known not in self._closes_before:
                    before = datetime.combine(action.ex_date, time(), timezone.utc)
                    candles = yield self.candles_store.read(action.symbol, "1d", 1, end=before)
                    if len(self._closes_before) >= CLOSES_CACHED:
                        self._closes_before.clear()
                    self._closes_before[known] = candles[-1]["close"] if candles else None
                closes[known] = self._closes_before[known]
        by_symbol = {}
        for action in actions:
            by_symbol.setdefault(action.symbol, []).append(action)
        return [adjust_bar(b, adjustment_factors(b["time"].date(), by_symbol.get(b["symbol"], ()), closes, kinds,
                                                 today)) for b in bars]

    @defer.inlineCallbacks
    def corporate_actions(self, stamp, start=None, end=None, symbols=None, kinds=None, limit=None, page_token=None,
                          sort=None):
        """The splits and cash dividends of ``symbols`` (default: every asset, if there are at most
        MAX_ACTION_ASSETS) processed from ``start`` to ``end`` (days, YYYY-MM-DD, both included; a split is
        processed on its date, a dividend on its pay date, as Alpaca's corporate actions), by process date
        (``sort`` desc: newest first), at most ``limit`` (1-200, default 200) after ``page_token`` (the answer's
        ``next_page_token``).  Only the actions of the days that have played (a split's date, a dividend's
        ex-date up to the market's day): a replay never shows its future.  ``kinds``: only these of
        ACTION_KINDS (others of Alpaca's types are none here).  ``start`` and ``end`` default to the market's day."""
        today = self._played_day()
        default = today.isoformat()
        first, last = _action_day("start", start or default), _action_day("end", end or default)
        if last < first:
            raise InvalidInput("end is before start")
        limit = limit or MAX_ACTIONS
        validation.limit(limit, MAX_ACTIONS)
        if sort not in (None, "asc", "desc"):
            raise InvalidInput("sort must be asc or desc")
        if symbols:
            wanted = self._known(symbols)
        elif len(self.board.assets) <= MAX_ACTION_ASSETS:
            wanted = sorted(self.board.assets)
        else:
            raise InvalidInput(f"this server trades more than {MAX_ACTION_ASSETS} assets: name the symbols")
        after = _action_token(page_token)
        kinds = set(ACTION_KINDS if kinds is None else kinds)
        if self.source is None or not wanted:
            return {"actions": []}
        # The days an action is told by (a split's date, a dividend's ex-date) come up to its process date.
        lo, hi = first - ACTION_LOOKBACK, min(last, today)
        if hi <= lo:
            return {"actions": []}
        actions = yield self._corporate_actions(wanted, lo, hi)
        rows = sorted((row for row in map(_action_row, actions)
                       if first <= row["process_date"] <= last and row["kind"] in kinds),
                      key=_action_key, reverse=sort == "desc")
        if after is not None:
            rows = [r for r in rows if (_action_key(r) < after if sort == "desc" else _action_key(r) > after)]
        answer = {"actions": [{k: v.isoformat() if isinstance(v, date) else v for k, v in r.items() if v is not None}
                              for r in rows[:limit]]}
        if len(rows) > limit:
            answer["next_page_token"] = "|".join(str(part) for part in _action_key(rows[limit - 1]))
        return answer

    @defer.inlineCallbacks
    def _corporate_actions(self, symbols, first, last, what="", advice="try again"):
        """The source's splits and dividends of ``symbols`` in (first, last], read once for a run of requests
        (a provider's answer serves every page); QuoteUnavailable saying so if they cannot be read now."""
        key = (tuple(symbols), first, last)
        actions = self._actions_cache.get(key)
        if actions is None:
            try:
                actions = yield self.source.corporate_actions(symbols, first, last)
            except Exception as e:
                raise QuoteUnavailable(f"the splits and dividends {what + ' ' if what else ''}cannot be read now"
                                       f" ({e}); {advice}")
            if len(self._actions_cache) >= ACTIONS_CACHED:
                self._actions_cache.pop(next(iter(self._actions_cache)))
            self._actions_cache[key] = actions
        return actions

    def _played_day(self):
        """The market's day: that of the newest session that has played; before the first update, the day
        before the market's time (a replay starting on a day has played the history before it)."""
        played = max((q.session_open for q in self.board.all() if q.session_open is not None), default=None)
        if played is not None:
            return played.date()
        return (self.market_clock.now() - timedelta(days=1)).date()

    @defer.inlineCallbacks
    def latest_bars(self, stamp, symbols, timeframe, count=None):
        """The newest ``count`` (1-10, default 1) bars of each of ``symbols`` (oldest first, per symbol);
        symbols not traded here, or without bars, are left out.  Daily bars are stamped as ``bars`` stamps
        them."""
        interval = BAR_TIMEFRAMES.get(timeframe)
        if interval is None:
            raise InvalidInput(f"timeframe must be one of {', '.join(BAR_TIMEFRAMES)}")
        count = count or 1
        validation.limit(count, 10)
        out = []
        for symbol in self._known(symbols):
            candles = yield self.candles_store.read(symbol, interval, count)
            out.extend(dict(c, symbol=symbol) for c in candles)
        if INTERVALS[interval] is None:
            out = [_at_midnight(b, self._zone()) for b in out]
        return {"bars": out}


#: The bar timeframes served, and the candles they read.
BAR_TIMEFRAMES = {**{f"{n}Min": f"{n}m" for n in MINUTE_BUCKETS}, "1Hour": "1h", "1Day": "1d"}


def _day(name, text):
    """A day of a request (YYYY-MM-DD), of the years a bar may have."""
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a day, YYYY-MM-DD")
    if not EARLIEST.date() < day < LATEST.date():
        raise InvalidInput(f"{name} is out of range: give a day from {EARLIEST.year + 1} to {LATEST.year - 1}")
    return day


def _midnight_from(moment, zone):
    """The first midnight in ``zone`` at or after ``moment`` (as a UTC time)."""
    day = moment.astimezone(zone).date()
    midnight = local_midnight(day, zone)
    return midnight if midnight >= moment else local_midnight(day + timedelta(days=1), zone)


def _at_midnight(bar, zone):
    """A bar of a day or longer stamped, as Alpaca's, at midnight (in ``zone``) of the day its session opened."""
    return dict(bar, time=local_midnight(bar["time"].astimezone(zone).date(), zone))


def _page_token(token):
    """(symbol, time) of a page token ours: the time of the last bar given, with its offset, of a year a bar
    may have (a token made up with another would be compared with times it cannot be, or leave the dates
    Python has when a bar's length is added to it)."""
    try:
        symbol, when = token.split("|", 1)
        moment = datetime.fromisoformat(when)
        if moment.tzinfo is None or not EARLIEST <= moment < LATEST:
            raise ValueError(when)
        return symbol, moment
    except (ValueError, OverflowError):
        raise InvalidInput("page_token: the next_page_token of an earlier page")


def _action_day(name, text):
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a day, YYYY-MM-DD")
    if not EARLIEST.date() <= day < LATEST.date():
        raise InvalidInput(f"{name} is out of range: give a day from {EARLIEST.date()} to"
                           f" {LATEST.date() - timedelta(days=1)}")
    return day


def _action_row(action):
    """A Split or a Dividend as the CorporateActions command answers it."""
    if isinstance(action, Dividend):
        return dict(kind="cash_dividend", symbol=action.symbol, ex_date=action.ex_date, process_date=action.paid_on,
                    pay_date=action.pay_date, rate=action.amount,
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                      f"papertrader:dividend:{action.symbol}:{action.ex_date}:{action.amount}")))
    kind = "forward_split" if action.new >= action.old else "reverse_split"
    return dict(kind=kind, symbol=action.symbol, ex_date=action.date, process_date=action.date,
                new_rate=action.new, old_rate=action.old,
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"papertrader:split:{action.symbol}:{action.date}")))


def _action_key(row):
    """What orders actions and pages them: two of one day and symbol differ by their kind, ex-date or rate (a
    regular and a special dividend)."""
    return (row["process_date"].isoformat(), row["symbol"], row["kind"], row["ex_date"].isoformat(),
            str(row.get("rate") or row.get("new_rate")), str(row.get("old_rate") or ""))


def _action_token(token):
    """The key a page token of ``corporate_actions`` names (the last action of the page before), or None."""
    if token in (None, ""):
        return None
    parts = token.split("|")
    if len(token) > 150 or len(parts) != 6:
        raise InvalidInput("page_token is not one this server gave")
    for i in (0, 3):
        _action_day("page_token", parts[i])
    return tuple(parts)
