"""The market update loop: one LoopingCall per update interval.

Each update the market clock advances one step (the wall clock: the interval since the
previous update; a replay: one step of history).  While that step overlaps a session, the
source is asked for its bars (within a deadline, so a hung provider never stalls the loop past
its interval); bad bars are refused and logged.  The bars' closes go on the quote board
(quotes with no fresh bar for longer than ``max_quote_age`` turn stale), the bars are folded into
the candle store, and the step — market time, bars, and the splits and dividends that take effect
— goes to the listeners in order: the push of the quotes to the workers, then the trading step
over the open orders.  On the master the trading step writes the candles too (``candle_writer``), in
the transaction that records the step's market time: a master killed before it commits has stored
neither, so after a restart the update plays again whole (never a session's bars twice, nor a bar the
market has not reached).  One LoopingCall drives all of it, so a trading step always follows the
update whose bars it uses.

A source that cannot answer keeps the platform up: the last good prices stay on the board (and
turn stale), the step still runs (orders expire on time), the outage is logged once when it
starts and once when it ends, and the next interval simply tries again.

The trading step (``candle_writer``), if it cannot take an update because the database is away (``transient``
says so of its failure), holds market time: each interval gives that update again to it and the listeners
after it, and plays nothing new, until they take it; so no session passes the open orders by, and the
candles have no hole.  Any other failure is logged and time goes on.
"""

from datetime import date, datetime, timedelta, timezone
from dataclasses import replace
from datetime import time as time_of_day
from decimal import Decimal
from zoneinfo import ZoneInfo

from twisted.application import service
from twisted.internet import defer, task
from twisted.python import failure

from papertrader.errors import InvalidInput
from papertrader.logs import counted
from papertrader.market.board import Quote
from papertrader.market.replay import ReplayEnded, parse_seek_date
from papertrader.times import parse_iso
from papertrader.trading.corporate import Split
from papertrader.trading.market import BadBar, MarketStep


#: While an update is held, its failure is said again every this many tries (a minute of 5 s intervals...).
HELD_SAY = 100

#: A live bar whose high or low is this far from the last price (a fraction) is logged: a spike or a bad print.
SPIKE = Decimal("0.2")


def restored_time(calendar, bucket, interval, last_step):
    """A stored bar's quote after a restart: (its time, its session or None).  A bar is stored by the start of its
    bucket (``interval`` '1m': a minute's; '1d': its session's open); its quote was as of the update that made
    it, within the bucket: the last update recorded (``last_step``, None if unknown) if that is within it, the
    session's close if a daily bar's session was over by then, else the bucket's start (a daily replay's price
    said the session's open after a restart, and had no session: no change today, until the next update)."""
    if interval == "1d":
        info = calendar.info(bucket)
        session = info.current or info.next
        end = session.close
    else:
        session = calendar.info(bucket).current
        end = bucket + timedelta(minutes=1)
    if last_step is None or last_step < bucket:
        return bucket, session
    if last_step < end:
        return last_step, session
    return (end if interval == "1d" else bucket), session


class MarketService(service.Service):
    def __init__(self, source, board, market_clock, candles, interval, clock, log, max_quote_age=None, state=None,
                 save=None):
        self.source = source
        self.board = board
        self.market_clock = market_clock
        self.candles = candles
        self.interval = interval
        self.clock = clock
        self.log = log
        self.max_quote_age = timedelta(seconds=max_quote_age or max(2 * interval, 120))
        #: Reads the saved market state at start: a callable returning a Deferred of {name: value}.
        self.state = state
        #: Saves some of it (an operator's pause, resume or seek): a callable taking {name: value}.
        self.save = save
        self.listeners = []
        #: The listener that stores the update's candle rows in its own transaction, with the step's market time
        #: (the master's trading step: ``listener(step, quotes, candles=rows)``); None: stored here, before the
        #: listeners run.
        self.candle_writer = None
        #: Called with the new time when market time was moved (a seek, a loop), before the candles after it are
        #: forgotten (the trading layer expires the orders placed after it); again until both are done.
        self.rewinding = []
        #: Called once a replay has ended, with a step of no bars at its last close (what its last update's
        #: listeners did, done again if that update failed or a kill cut it short: the games still running are
        #: finished); at each update interval until they all succeed.  Each must do nothing the second time.
        self.ended = []
        self._ended_done = False
        #: Called with all the board's quotes when market time was moved (a seek, a loop): they replace all.
        self.rewound = []
        #: Called (no arguments) when an operator paused or resumed a replay: its state changed, its time did not.
        self.state_changed = []
        #: An update some listeners failed to take: (step, quotes, candle rows, those listeners, tries); played
        #: again, and nothing else, at each interval until they take it (None: none).
        self._pending = None
        #: Whether a failure of the trading step is worth holding the update for (the database away: it passes),
        #: given the Failure; None: never (the master's: master/db.py is_unavailable, or an unknown outcome).
        self.transient = None
        #: When to ask the source for the asset list again (clock seconds; None: it was read).
        self._describe_at = None
        #: When to ask a live source again for the days before its start (clock seconds; None: not wanted).
        self._past_at = None
        #: Quotes made between updates (the days before, read late): given to the listeners with the next one.
        self._unsent = []
        #: Seeks and updates, one at a time.
        self._moving = defer.DeferredLock()
        #: The time from which candles are still to be forgotten after a rewind (None: none).
        self._forget_from = None
        self.ticks = 0
        self.last = None
        self.actions_through = None
        self.outage = None
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock
        self._pruned = None
        #: Fires once the board is resumed and the first update has started.
        self.started = None
        #: The update in progress, if any (tests wait on it after advancing the clock).
        self.busy = None

    @defer.inlineCallbacks
    def _resume(self):
        """Continue from what is stored: the replay's position, the board, the source's prices, asset names."""
        saved = (yield self.state()) if self.state is not None else {}
        if self.save is not None and saved.get("provider") != self.source.name:
            # Read by papertrader-admin with no master running: only a replay's clock can be paused or moved.
            yield self.save({"provider": self.source.name})
        if saved.get("last_step"):
            last = parse_iso(saved["last_step"])
            info = self.market_clock.info(last)
            position = last if info.is_open else info.next.open
            self.market_clock.restore(position, saved.get("replay_state", "running"))
            first = getattr(self.market_clock, "first_open", None)
            if first is not None and position < first:
                self.log.warn("market: this data dir's replay continues from {now}, before replay_start"
                              " {start}: replay_start applies to a new data dir (move this one with 'market seek"
                              " DATE'; days before replay_start cannot be sought)", now=position.date().isoformat(),
                              start=self.market_clock.first_day.isoformat())
        if saved.get("actions_through"):
            self.actions_through = date.fromisoformat(saved["actions_through"])
        if saved.get("replay_seek") and hasattr(self.market_clock, "seek"):
            try:
                yield self.control("seek", saved["replay_seek"])  # asked for while no master ran
            except InvalidInput as e:
                self.log.warn("market: the seek recorded while no master ran is refused: {error}", error=e.message)
                if self.save is not None:
                    yield self.save({"replay_seek": ""})
        closes = yield self.candles.last_closes(self.board.assets, intervals=True)
        last_step = parse_iso(saved["last_step"]) if saved.get("last_step") else None
        for symbol, (price, bucket, interval) in closes.items():
            self.source.resume(symbol, price)
            # Its session and the close before it, as the update that made it had them (today's change).
            time, session = restored_time(self.market_clock.calendar, bucket, interval, last_step)
            previous = None
            if session is not None:
                before = yield self.candles.last_closes([symbol], before=session.open)
                previous = before[symbol][0] if symbol in before else None
            self.board.update([Quote(symbol, price, time, previous, session.open if session is not None else None)])
        # A replay moved back before it stopped, or candles of an update whose step was never recorded (from
        # before candles were written with the step): a bucket that starts at the replay's position or later
        # is of a session it has not played.
        if hasattr(self.market_clock, "seek") and any(bucket >= self.market_clock.now()
                                                      for _, bucket, _ in closes.values()):
            yield self._rewind(self.market_clock.now())
        yield self._describe()
        seed = getattr(self.source, "history_before", None)
        if seed is not None and not saved.get("last_step"):
            yield self._seed(seed)
        yield self._past()  # (the workers read the whole board when they link)

    #: Seconds before a source is asked again for what it could not give at start (the asset list, the days before).
    ASK_AGAIN = 600

    @defer.inlineCallbacks
    def _describe(self):
        """The assets' names and exchanges from the source; if it cannot say now (a live provider down at the
        master's start), asked again every ASK_AGAIN seconds at an update until it does."""
        try:
            assets = yield self.source.assets(self.board.assets)
        except Exception as e:
            self.log.warn("market data: could not read the asset list: {error}; asked again in {n:.0f} s",
                          error=str(e) or type(e).__name__, n=self.ASK_AGAIN)
            self._describe_at = self.clock.seconds() + self.ASK_AGAIN
            return
        self.board.describe(assets, self.source.name)
        listed = {asset.symbol for asset in assets}
        unlisted = [s for s in self.board.assets if s not in listed]
        if unlisted:
            self.log.warn("market data: {source} does not list {symbols} among its assets (a mistake in the setting"
                          " assets?): {them} no name, and no price until a bar of {it} comes",
                          source=self.source.name, symbols=", ".join(unlisted),
                          them="it has" if len(unlisted) == 1 else "they have",
                          it="it" if len(unlisted) == 1 else "them")
        if self._describe_at is not None:
            self.log.info("market data: the asset list is read")
        self._describe_at = None

    @defer.inlineCallbacks
    def _seed(self, history_before):
        """A fresh replay: store the daily history before its start, so charts have a past."""
        start = self.market_clock.now()
        bars = [b for symbol in self.board.assets for b in history_before(symbol, start)]
        if bars:
            yield self.candles.store(bars, lambda bar: bar.start)
            last = {}
            for bar in bars:
                last[bar.symbol] = bar
            self.board.update([Quote(b.symbol, b.close, b.end) for b in last.values()])
            self.log.info("market data: {bars} of history before {start} stored", bars=counted(len(bars), "daily bar"),
                          start=start.date().isoformat())

    #: How far back a live source's daily bars go at a fresh start: a year of charts, and the last close.
    PAST_DAYS = 366

    @defer.inlineCallbacks
    def _past(self):
        """A live source's daily bars of the sessions before now, for the symbols without a price (a fresh data
        dir, a symbol added since): each one's last close is its price until its first bar of a session (as a
        broker shows it over a weekend: market orders are taken for the open), and its charts have a past.
        Stored as candles (a restart reads them); a source that cannot answer is asked again later.  Returns
        the quotes it made."""
        days_of = getattr(self.source, "daily_bars", None)
        missing = [s for s in self.board.assets if self.board.get(s) is None]
        self._past_at = None
        if days_of is None or not missing:
            return []
        calendar = self.market_clock.calendar
        now = self.market_clock.now()
        current = calendar.info(now).current
        settle = timedelta(seconds=getattr(self.source, "close_settle", 0))
        until = current.open if current is not None else now
        try:
            days = yield days_of(missing, until - timedelta(days=self.PAST_DAYS), until)
        except Exception as e:
            self.log.warn("market data: could not read the days before now: {error}; the symbols have no price"
                          " until their first bar (asked again in {n:.0f} s)", error=str(e) or type(e).__name__,
                          n=self.ASK_AGAIN)
            self._past_at = self.clock.seconds() + self.ASK_AGAIN
            return []
        zone = ZoneInfo(calendar.timezone)
        bars, quotes = [], []
        for symbol in missing:
            placed = []
            for bar in days.get(symbol, ()):
                session = calendar.session_on(bar.start.astimezone(zone).date())
                if session is not None and session.close + settle <= now:  # a day over: not today's bar so far
                    placed.append(replace(bar, start=session.open, end=session.close))
            if placed and self.board.get(symbol) is None:  # (not since given a price by an update)
                bars.extend(placed)
                last = placed[-1]
                quotes.append(Quote(symbol, last.close, last.end, placed[-2].close if len(placed) > 1 else None,
                                    last.start))
        if bars:
            yield self.candles.store(bars, lambda bar: bar.start)
            self.log.info("market data: {bars} of {symbols} stored; {each} last close ({day}) is its price until its"
                          " first bar", bars=counted(len(bars), "daily bar"), symbols=counted(len(quotes), "symbol"),
                          each="its" if len(quotes) == 1 else "each one's",
                          day=max(b.end for b in bars).astimezone(zone).date().isoformat())
        self.board.update(quotes)
        return quotes

    def startService(self):
        super().startService()
        self.started = self._resume()
        self.started.addErrback(lambda f: self.log.failure("could not resume market data", f))
        self.started.addCallback(lambda _: self._loop.start(self.interval, now=True) and None)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self.busy is not None:
            yield self.busy
        close = getattr(self.source, "close", None)
        if close is not None:
            yield close()  # a live source's kept-alive HTTP connections

    @defer.inlineCallbacks
    def control(self, action, when=None, by="an operator", budget=None):
        """An operator's command (or that of an account ``market_control`` names: ``by`` its name): ``status``;
        for a replay ``pause``, ``resume``, ``seek`` (``when``: YYYY-MM-DD), ``step`` (``when``: how many updates;
        ``budget``: seconds after which it plays no more, so that the answer comes before the callers' own
        timeouts: ``played`` says how many it did).  Fires with the clock's description; the new state is
        saved at once."""
        clock = self.market_clock
        if action != "status":
            if not hasattr(clock, "seek"):
                raise InvalidInput("the market follows the wall clock: only a replay can be paused, resumed or moved")
            changes = {}
            if action == "pause":
                clock.pause()
            elif action == "resume":
                clock.resume()
            elif action == "seek":
                # Never beside an update: one of the old time would store its candles and prices after the
                # rewind, and save its step over the seek's.
                yield self._moving.run(self._seek, parse_seek_date(when))
            elif action == "step":
                # Paused (if it was not), then exactly this many updates, each with its trading step, one after
                # another, answered once all are done: a backtest in lockstep with its strategy.
                count = parse_step_count(when)
                if clock.state == "ended":
                    raise ReplayEnded(f"the replay has ended (its last day: {clock.last_day}): nothing is left to"
                                      " play; seek back to play again")
                clock.pause()
                played = 0
                deadline = None if budget is None else self.clock.seconds() + budget
                for _ in range(count):
                    if clock.state != "paused":
                        break  # the replay ended
                    if (yield self.tick(paused_too=True)):
                        played += 1
                    if deadline is not None and self.clock.seconds() >= deadline:
                        break  # the time to answer has come (at least one update played)
            else:
                raise InvalidInput("the market commands are status, pause, resume, seek DATE and step [N]")
            if action != "seek" and self.save is not None:
                yield self.save(dict(changes, replay_state=clock.state))
            if action in ("pause", "resume"):
                for listener in self.state_changed:
                    listener()
            self.log.info("market: {action}{when} by {by}; market time {time}, {state}", action=action,
                          when=f" {when}" if when else "", by=by, time=clock.now().isoformat(), state=clock.state)
        answer = clock.describe()
        if action == "step":
            answer["played"] = played
        return answer

    def tick(self, paused_too=False):
        """One update (never raises: a failure is logged and the next interval tries again); ``paused_too``: also
        while a replay is paused (an operator's ``step``)."""
        self.busy = defer.Deferred()  # fired when this update is done (it may first wait for a seek to finish)
        self._moving.run(self._tick, paused_too).chainDeferred(self.busy)
        return self.busy

    @defer.inlineCallbacks
    def _seek(self, target):
        """Move a replay's time to the open of ``target`` (a date): saved first (a master killed after it resumes
        from there, and rewinds again what it finds later than that), then rewound."""
        clock = self.market_clock
        before = clock.now()
        position = clock.seek(target)
        changes = {"last_step": (position - timedelta(microseconds=1)).isoformat(timespec="microseconds"),
                   "replay_seek": "", "replay_state": clock.state}
        if position < before:  # back in time: corporate actions happen again
            self.actions_through = position.date() - timedelta(days=1)
            changes["actions_through"] = self.actions_through.isoformat()
        if self.save is not None:
            yield self.save(changes)
        yield self._rewind(position)

    @defer.inlineCallbacks
    def _rewind(self, position):
        """Market time was moved to ``position`` (a seek either way, or a loop): the board holds each symbol's
        last price before it (none for a symbol listed later), the candles from then on are forgotten (those
        days are played again, or not at all), and the ``rewound`` listeners are told all the quotes.  If the
        candles cannot be forgotten now, no update plays until they are (``_forget``)."""
        bars = self.source.last_bars(self.board.assets, position)  # only a replay's time moves: a ReplaySource
        self._pending = None  # (an update of the old time not taken yet is of a time no longer played)
        self.board.rewind([Quote(b.symbol, b.close, b.end) for b in bars.values()])
        self.last = None
        self._forget_from = position if self._forget_from is None else min(self._forget_from, position)
        yield self._forget()
        for listener in self.rewound:
            try:
                yield listener(self.board.all())
            except Exception:
                self.log.failure("after market time was moved, {listener} failed", listener=listener)

    @defer.inlineCallbacks
    def _forget(self):
        """Tell the ``rewinding`` listeners, then forget the candles a rewind left to forget; True once done (a
        failure is logged, and all of it is done again at the next update: each part is idempotent)."""
        try:
            for listener in self.rewinding:
                yield listener(self._forget_from)
            yield self.candles.forget_from(self._forget_from, self.board.assets)
        except Exception:
            self.log.failure("market: could not expire the later orders or forget the later candles after market"
                             " time was moved; the market waits and tries again at the next update")
            return False
        self._forget_from = None
        return True

    def _checked(self, bars, start, end):
        good = {}
        live = getattr(self.source, "takes_session", False)  # (a replay's history is what it is)
        for symbol, bar in bars.items():
            if symbol not in self.board.assets:
                self.log.warn("market data: ignored a bar of {symbol}, which is not traded here", symbol=symbol)
                continue
            try:
                bar.check()
            except BadBar as e:
                self.log.warn("market data: refused a bad bar: {error}", error=str(e))
                continue
            quote = self.board.get(symbol)
            if quote is not None and bar.end <= quote.time:
                if bar.end < quote.time:
                    self.log.warn("market data: refused a bar of {symbol} that goes back in time", symbol=symbol)
                continue
            if quote is not None and live and quote.price > 0:
                far = max(bar.high / quote.price - 1, 1 - bar.low / quote.price)
                if far > SPIKE:
                    # Kept (a real market moves so, rarely: news, a split), but said: orders trade at it.
                    self.log.warn("market data: {symbol} moved {pct:.0f}% in one update ({last} before; this bar"
                                  " {low} to {high}); orders trade at these prices: if it is the source's mistake,"
                                  " pause trading in it", symbol=symbol, pct=far * 100, last=quote.price,
                                  low=bar.low, high=bar.high)
            good[symbol] = bar
        return good

    def _fetch(self, start, end, session=None):
        # A live source is told the session's hours: its pre-market and after-hours prints are not the session's
        # (a fill at a pre-market price, dated before the open; an opening bar that opened at it).
        more = {"session": session} if session is not None and getattr(self.source, "takes_session", False) else {}
        d = defer.maybeDeferred(self.source.fetch, self.board.assets, start, end, **more)
        return d.addTimeout(max(self.interval * 0.8, 0.01), self.clock)

    def _unavailable(self, reason):
        if self.outage is None:
            self.outage = self.clock.seconds()
            self.log.error("market data: {source} is unavailable ({reason}); the last prices stay, marked stale"
                           " after {age:.0f} s", source=getattr(self.source, "name", "the source"), reason=reason,
                           age=self.max_quote_age.total_seconds())

    def _available(self):
        if self.outage is not None:
            self.log.info("market data: {source} is back after {seconds:.0f} s",
                          source=getattr(self.source, "name", "the source"),
                          seconds=self.clock.seconds() - self.outage)
            self.outage = None

    @defer.inlineCallbacks
    def _after_the_end(self):
        """While a replay has ended: the ``ended`` listeners, with a step of no bars at its last session's close."""
        last_day = getattr(self.market_clock, "last_day", None)
        if getattr(self.market_clock, "state", None) != "ended" or last_day is None or self._ended_done:
            return
        info = self.market_clock.calendar.info(datetime.combine(last_day, time_of_day(0), timezone.utc))
        session = info.current or info.next
        step = MarketStep(session.close, {}, (), (), session.open.date())
        done = True
        for listener in self.ended:
            try:
                yield listener(step)
            except Exception:
                done = False
                self.log.failure("after the replay's end, {listener} failed (tried again next interval)",
                                 listener=listener)
        self._ended_done = done

    @defer.inlineCallbacks
    def _tick(self, paused_too=False):
        if self._forget_from is not None and not (yield self._forget()):
            return  # time was moved and the candles after it are still there: nothing plays on top of them
        if self._describe_at is not None and self.clock.seconds() >= self._describe_at:
            yield self._describe()
        if self._past_at is not None and self.clock.seconds() >= self._past_at:
            self._unsent.extend((yield self._past()))
        if self._pending is not None:  # an update some listeners could not take: it again, and only it
            step, quotes, rows, listeners, _ = self._pending
            played = yield self._deliver(step, quotes, rows, listeners)
            return played
        try:
            advance = self.market_clock.advance(paused_too) if paused_too else self.market_clock.advance()
            if advance is None:
                yield self._after_the_end()
                return  # a paused or ended replay: market time stands still
            self._ended_done = False  # (it plays again: a seek back)
            if getattr(self.market_clock, "state", None) == "ended":
                self.log.info("market: the replay plays its last day, {day}: it has ended after this update (seek"
                              " back to play again)", day=self.market_clock.last_day)
            end = advance.end
            if advance.reset:
                yield self._rewind(advance.start)
            elif advance.skipped:
                self.last = None  # a seek forward: the skipped sessions' bars do not trade (nor fold into one)
            start = self.last or advance.start
            calendar = self.market_clock.calendar
            info, before = calendar.info(end - timedelta(microseconds=1)), calendar.info(start)
            trading = info.is_open or before.is_open
            settle = timedelta(seconds=getattr(self.source, "close_settle", 0))
            if settle and before.is_open and not info.is_open and end < before.current.close + settle:
                # The session has just closed and its last minutes may still be on their way (a live source
                # publishes a minute some seconds after it ends): its close waits for them (from here: a live
                # clock's own start has moved on already).
                self.last = start
                return False
            bars = {}
            if trading:
                hours = before.current or info.current
                try:
                    fetched = yield self._fetch(start, end, (hours.open, hours.close) if hours else None)
                except Exception as e:
                    self._unavailable(getattr(e, "args", None) and str(e) or type(e).__name__)
                else:
                    self._available()
                    bars = self._checked(fetched, start, end)
                    self.last = end
            else:
                self.last = end
            session = before.current or info.current or info.next
            today = session.open.date()
            actions = yield self._actions(today)
            quotes = self._unsent + self.board.update_bars(
                bars, session.open, end if trading else None, self.max_quote_age,
                splits=[a for a in actions if isinstance(a, Split)])
            self._unsent = []
            self.ticks += 1
            rows = self.candles.rows(list(bars.values()),
                                     lambda bar: (calendar.info(bar.start).current or session).open) if bars else []
            if rows and self.candle_writer is None:
                yield self.candles.store_rows(rows)
        except Exception:
            self.log.failure("market data update failed; will try again next interval")
            return
        step = MarketStep(end, bars, tuple(actions), (), today)
        played = yield self._deliver(step, quotes, rows, self.listeners)
        return played  # an update was played (``control``'s step counts them)

    @defer.inlineCallbacks
    def _deliver(self, step, quotes, rows, listeners):
        """The update's step to ``listeners`` in order; True once all have taken it.  If the trading step (the
        ``candle_writer``) fails (its database is away), it and those after it are kept (``_pending``) and market
        time waits: each interval plays them again, and nothing else, until they succeed.  (Time that went on
        would leave the open orders a session they never met: a day order expired without a bar; and the
        session's candles a hole.)  Another listener's failure is logged and the update goes on."""
        for n, listener in enumerate(listeners):
            writes = self.candle_writer is not None and listener == self.candle_writer
            try:
                if writes:
                    yield listener(step, quotes, candles=rows)
                else:
                    yield listener(step, quotes)
            except Exception:
                failed = failure.Failure()
                if not writes or self.transient is None or not self.transient(failed):
                    # Another listener; or a failure that playing it again would only repeat (a bug, bad data):
                    # said, and time goes on (holding the market for everyone would help nobody).
                    self.log.failure("after the market update, {listener} failed", failed, listener=listener)
                    continue
                held = self._pending[4] + 1 if self._pending is not None and self._pending[0] is step else 1
                if held == 1 or held % HELD_SAY == 0:
                    self.log.failure("after the market update of {time}, {listener} failed; market time waits and"
                                     " it is played again at each interval (tries: {n})", failed, listener=listener,
                                     time=step.time.isoformat(), n=held)
                self._pending = (step, quotes, rows, listeners[n:], held)
                return False
        if listeners is not self.listeners:
            self.log.info("market: the update of {time} is played at last; market time goes on",
                          time=step.time.isoformat())
        self._pending = None
        self.actions_through = step.today  # (the trading step saved it with its own transaction)
        yield self._prune(step.time)
        return True

    @defer.inlineCallbacks
    def _actions(self, today):
        """The splits and dividends dated after the last step's day, up to ``today``."""
        since = self.actions_through
        if since is None or since >= today:
            self.actions_through = self.actions_through or today
            return []
        try:
            actions = yield self.source.corporate_actions(self.board.assets, since, today)
        except Exception as e:
            self.log.warn("market data: could not read corporate actions: {error}", error=str(e) or
                          type(e).__name__)
            return []
        return actions

    @defer.inlineCallbacks
    def _prune(self, now):
        if self._pruned is not None and now - self._pruned < timedelta(days=1):
            return
        self._pruned = now
        try:
            yield self.candles.prune(now)
        except Exception:
            self.log.failure("could not prune old minute candles")


#: Most updates one ``step`` plays (a year of daily sessions).
MAX_STEP = 260


def parse_step_count(text):
    """The N of ``market step [N]``: 1 to MAX_STEP (default 1)."""
    if text in (None, ""):
        return 1
    try:
        count = int(str(text).strip())
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_STEP:
        raise InvalidInput(f"market step takes a number of updates from 1 to {MAX_STEP} (default 1), not {text!r}")
    return count
