"""The crash suite: real processes, random orders, SIGKILL at random moments, then the books are checked.

A run starts a real master and ``workers`` workers as separate ``twistd`` processes (the simulated market,
a short update interval, a small volume share so that orders also fill in parts), registers ``users``
accounts, and lets each user trade over the real client connection (``papertrader.client.connection``:
TLS AMP through a worker, with the client's own failover): every order type (market, limit, stop,
stop_limit, trailing_stop) and every time in force (day, gtc, ioc, fok, opg, cls; stops take day or gtc),
some notional buys, some orders too big to pay or to sell (refused), some sent again with the same
``client_order_id`` (after an uncertain answer, and after an acknowledgement), some canceled (one, or now
and then all at once) or replaced.  About one new order in eight is a bracket, OTO or OCO order
(papertrader/trading/contingent.py): a buy entry of any type it takes with exits 0.3% to 2% above and below
its price (so that exits fill during a run), or an OCO selling part of a position held; cancels and replaces
pick their exits too (a held exit's refusal is one more expected refusal).
Meanwhile it kills the master, a worker, or everything with SIGKILL ``kills`` times and restarts what it
killed each time, waiting (with a timeout) until the master listens and every worker is linked again.

Afterwards, the checks, per account, read from the database (:func:`check`):

- every acknowledged order (the client got an order id back) exists exactly once, on that account, with
  the client order id it was sent with; no client order id maps to two orders, and no order exists that
  no client sent; an order refused with a definite answer (insufficient funds, ...) does not exist;
- its status is open or final and its events explain it: one ``accepted``, one fill event per fill, one
  event of its final kind (``canceled``, ``expired``, ...) and none while it is open; filled quantity never
  exceeds the ordered quantity, equals it when ``filled``, lies strictly between when ``partially_filled``;
- cash equals the starting cash plus the signed amounts of the history (exact, in cents), and every row's
  ``cash_after`` is the one before plus its amount; each position equals the sum of its fills (the
  simulated market has no splits), and every fill's ``position_after`` agrees; no cash or position is
  negative;
- the exits of bracket, OCO and OTO orders (whose client order ids the server makes) hang from an order of
  the account and were shown to the client as its exits; an exit is ``held`` (no event, nothing filled)
  exactly while its entry is open, accepted once when it opens; per group: the parts have its shape, the
  exits together never fill more than the entry filled (or than the OCO was for), an entry that ended with
  nothing filled has no exit open or filled, an exit is never for more than its entry filled, no exit fills
  before the entry's last fill, two open exits have the same quantity left, and one never stays open when
  the other has ended;
- every order state the client saw agrees with the database: a final status it saw is the database's
  status with the same filled quantity; no filled quantity it saw exceeds the database's; every fill it
  saw (``GetOrder``) is a fill of that order in the database; an order it saw replaced has a successor;
  each user also watches its order events (``WatchOrders``, subscribing again after each kill): no event
  kind was pushed more often than the database has it, and every pushed fill (quantity, price, position
  after) is a fill in the database;
- no process's output or log file holds a ``Traceback``.

Replaying: every choice (each user's actions, quantities, prices relative to the quote, when and what to
kill) comes from ``random.Random`` seeded with the run's seed, so the same seed replays the same schedule
of actions and kills: the n-th action of each user draws from a Random of its own, so it is the same kind
of action with the same parameters and client order id in every replay, and the n-th kill hits the same
target at the same trigger.  The interleaving with the processes cannot be perfectly deterministic: how far
a market step or a restart has got when a kill lands, which worker a client reaches, which actions a kill
interrupts, the quote a price is relative to and which open order a cancel picks (the simulated market's
bars follow the wall clock) vary from run to run.  A kill moment is part of the schedule — "after N more
acknowledgements" or "after a delay of D seconds" measured on the reactor's clock — never a wait for
timing; every wait for a condition has a timeout.

Used by ``tests/test_crash_suite.py`` (a short run per database in CI) and ``bench/crash_suite.py`` (the
long run, and replaying a seed).
"""

import glob
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from twisted.internet import defer, protocol, task

from papertrader import commands, tls
from papertrader.client.connection import Connection
from papertrader.errors import PaperTraderError
from papertrader.master import files
from papertrader.master.db import Database

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
SYMBOLS = ("AAPL", "MSFT", "TSLA")
STARTING_CASH = Decimal("100000.00")
PASSWORD = "crash suite password"
#: Seconds a restart may take until the master listens and every worker is linked again.
RESTART_TIMEOUT = 60
#: Seconds a kill waiting for "N more acknowledgements" waits before it kills anyway (a stall is reported).
ACK_TIMEOUT = 60
#: Seconds the run may take to settle the orders whose answer was lost, once the kills are over.
SETTLE_TIMEOUT = 120

OPEN = {"new", "partially_filled"}
#: An exit of a bracket or OTO order waiting for its entry to fill (not open, not ended: it can't be canceled).
HELD = "held"
FINAL = {"filled", "canceled", "expired", "replaced", "rejected"}
#: Errors after which a command may or may not have been done (the connection failed somewhere).
UNCERTAIN = {"unreachable", "no_worker", "worker_failed", "master_unavailable", "wrong_server", "server_error",
             "outcome_unknown"}
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
ALL_TIF = ("day", "gtc", "ioc", "fok", "opg", "cls")
STOP_TIF = ("day", "gtc")
#: Bracket, OCO and OTO orders (papertrader/trading/contingent.py): the share of new orders, the classes' weights,
#: the entry types a bracket or OTO takes, and how far (in 1e-4 of the price) its exits lie from the entry's price.
CONTINGENT_SHARE = 0.13
CLASSES = ("bracket", "oto", "oco")
CLASS_WEIGHTS = (5, 3, 3)
ENTRY_TYPES = ("market", "limit", "stop", "stop_limit")
EXIT_OFFSETS = (30, 200)  # +0.3%..2% (take-profit), -0.3%..2% (stop-loss)

UNITS = Decimal("0.000001")  # quantities are stored in 1e-6 units
CENTS = Decimal("0.01")


def replay_command(seed, kills, kind):
    return f"python bench/crash_suite.py --seed {seed} --kills {kills} --db {kind}"


# --- processes ---------------------------------------------------------------------------------------------


class Process(protocol.ProcessProtocol):
    """A child process whose output goes to a file and can be waited on (bounded) from an offset."""

    def __init__(self, reactor, name, path):
        self.reactor = reactor
        self.name = name
        self.path = path
        self.file = open(path, "ab")
        self.output = b""
        self.waiting = []
        self.ended = defer.Deferred()
        self.running = True

    def outReceived(self, data):
        self.output += data
        self.file.write(data)
        self.file.flush()
        for item in list(self.waiting):
            text, start, d = item
            if self.output.find(text, start) >= 0:
                self.waiting.remove(item)
                d.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        self.running = False
        self.file.close()
        for item in list(self.waiting):
            self.waiting.remove(item)
            item[2].errback(RuntimeError(f"{self.name} ended while waiting for {item[0]!r}; see {self.path}"))
        self.ended.callback(reason.value)

    def wait_for(self, text, start=0, timeout=RESTART_TIMEOUT):
        """Fires once ``text`` is in the output at or after ``start``; fails after ``timeout`` seconds or if the
        process ends first."""
        text = text.encode()
        if self.output.find(text, start) >= 0:
            return defer.succeed(None)
        if not self.running:
            return defer.fail(RuntimeError(f"{self.name} is not running; see {self.path}"))
        d = defer.Deferred()
        item = (text, start, d)
        self.waiting.append(item)

        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            if item in self.waiting:
                self.waiting.remove(item)
            raise RuntimeError(f"{text.decode()!r} not seen from {self.name} within {timeout} s; see {self.path}")

        return d.addTimeout(timeout, self.reactor).addErrback(timed_out)

    def kill(self):
        """SIGKILL; fires once the process is gone."""
        if self.running and self.transport.pid:
            os.kill(self.transport.pid, signal.SIGKILL)
        return bounded(self.reactor, self.ended, 30, f"{self.name} to end")


def bounded(reactor, d, timeout, what):
    def timed_out(failure):
        failure.trap(defer.TimeoutError)
        raise RuntimeError(f"waited {timeout} s for {what}")

    return d.addTimeout(timeout, reactor).addErrback(timed_out)


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


class Processes:
    """The master and workers of one run, as ``twistd`` processes on fixed loopback ports."""

    def __init__(self, reactor, workdir, database_url, workers, update_interval="0.2", volume_share="0.0005"):
        self.reactor = reactor
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "master")
        self.log_dir = os.path.join(workdir, "logs")
        self.database_url = database_url
        self.names = [f"w{i + 1}" for i in range(workers)]
        self.update_interval = update_interval
        self.volume_share = volume_share
        self.master = None
        self.workers = {}
        self.lives = Counter()
        self.port = None
        self.worker_ports = {}

    def prepare(self):
        os.makedirs(self.log_dir, exist_ok=True)
        files.ensure_master_files(self.data_dir)
        for name in self.names:
            subprocess.run([sys.executable, "-m", "papertrader.admin", "--data-dir", self.data_dir, "--database",
                            self.database_url, "register-worker", name], check=True, capture_output=True,
                           env=_env())
        self.port = free_port()
        self.worker_ports = {name: free_port() for name in self.names}

    @property
    def ca_pem(self):
        with open(os.path.join(self.data_dir, "ca.pem"), "rb") as f:
            return f.read()

    def _spawn(self, name, args):
        self.lives[name] += 1
        proc = Process(self.reactor, name, os.path.join(self.log_dir, f"{name}.{self.lives[name]}.log"))
        self.reactor.spawnProcess(proc, sys.executable, [sys.executable, "-c", TWISTD, "-n", "--pidfile="] + args,
                                  env=_env(), path=os.getcwd())
        return proc

    def spawn_master(self):
        cert = os.path.join(self.data_dir, files.MASTER_CERT)
        self.master = self._spawn("master", [
            "papertrader-master", "--data-dir", self.data_dir, "--database", self.database_url,
            "--port", tls.listen_description(self.port, "127.0.0.1", cert),
            "--update-interval", self.update_interval, "--bcrypt-rounds", "4", "--provider", "simulated",
            "--calendar", "always_open", "--assets", ",".join(SYMBOLS), "--volume-share", self.volume_share,
            "--starting-cash", str(STARTING_CASH), "--heartbeat-interval", "1"])
        return self.master

    def spawn_worker(self, name):
        bundle = files.worker_dir(self.data_dir, name)
        cert = os.path.join(bundle, files.WORKER_CERT)
        self.workers[name] = self._spawn(name, [
            "papertrader-worker", "--data-dir", bundle, "--name", name, "--master", f"localhost:{self.port}",
            "--port", tls.listen_description(self.worker_ports[name], "127.0.0.1", cert)])
        return self.workers[name]

    async def start_master(self):
        """Start the master; retry if it exits while starting (the previous one's locks may linger a moment)."""
        for attempt in range(5):
            master = self.spawn_master()
            try:
                await master.wait_for("master listening on port")
                return master
            except RuntimeError:
                if master.running or attempt == 4:
                    raise
                await sleep(self.reactor, 0.5)

    async def linked(self, names, offset):
        """Until the master says each of ``names`` linked (in its output after ``offset``)."""
        for name in names:
            await self.master.wait_for(f"worker {name} linked", offset)

    async def start_all(self):
        await self.start_master()
        for name in self.names:
            self.spawn_worker(name)
        await self.linked(self.names, 0)

    async def kill(self, target):
        """SIGKILL ``target`` ("master", "all" or a worker's name), restart it, and wait until all is linked."""
        if target == "master":
            await self.master.kill()
            await self.start_master()
            await self.linked(self.names, 0)
        elif target == "all":
            await defer.gatherResults([self.master.kill()] + [w.kill() for w in self.workers.values()],
                                      consumeErrors=True)
            await self.start_master()
            for name in self.names:
                self.spawn_worker(name)
            await self.linked(self.names, 0)
        else:
            await self.workers[target].kill()
            offset = len(self.master.output)
            self.spawn_worker(target)
            await self.linked([target], offset)

    async def stop(self):
        """End every process (SIGTERM, then SIGKILL if it lingers)."""
        procs = [p for p in [self.master, *self.workers.values()] if p is not None and p.running]
        for p in procs:
            p.transport.signalProcess("TERM")
        for p in procs:
            try:
                await bounded(self.reactor, p.ended, 30, f"{p.name} to stop")
            except RuntimeError:
                await p.kill()

    async def kill_all(self):
        procs = [p for p in [self.master, *self.workers.values()] if p is not None and p.running]
        await defer.gatherResults([p.kill() for p in procs], consumeErrors=True)

    def kill_now(self):
        """SIGKILL every process at once (the reactor is shutting down: the suite itself was stopped, by SIGTERM
        or Ctrl-C; nothing may be left running)."""
        for p in [self.master, *self.workers.values()]:
            if p is not None and p.running and p.transport.pid:
                os.kill(p.transport.pid, signal.SIGKILL)

    def log_files(self):
        found = glob.glob(os.path.join(self.log_dir, "*.log"))
        found += glob.glob(os.path.join(self.data_dir, "**", "*.log*"), recursive=True)
        return sorted(set(found))


async def sleep(reactor, seconds):
    await task.deferLater(reactor, seconds, lambda: None)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# --- traders -----------------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What one user saw: its orders as answered, and what it was refused."""

    acknowledged: dict = field(default_factory=dict)  # client_order_id -> order id
    sent: dict = field(default_factory=dict)  # client_order_id -> arguments (every order it tried to make)
    refused: dict = field(default_factory=dict)  # client_order_id -> error code (a definite no, no order made)
    pending: dict = field(default_factory=dict)  # client_order_id -> (command, arguments): answer lost
    views: list = field(default_factory=list)  # (order id, status, filled quantity, replaced_by)
    exits: dict = field(default_factory=dict)  # exit order id -> the order id it hangs from (bracket, OCO, OTO)
    fills: list = field(default_factory=list)  # (order id, time, quantity, price)
    events: list = field(default_factory=list)  # pushed order events: (order id, kind, quantity, price, position)
    problems: list = field(default_factory=list)  # what the client saw that is wrong in itself


class Trader:
    """One user: places, resends, cancels, replaces and reads orders with choices from its own seeded random."""

    def __init__(self, reactor, processes, index, seed, counters):
        self.reactor = reactor
        self.processes = processes
        self.name = f"trader{index}"
        self.seed = seed
        self.rng = None  # each action's own (see act)
        self.counters = counters
        self.seen = Seen()
        self.token = None
        self.connection = None
        self.quotes = {}
        self.last_status = {}
        self.exit_prices = {}  # an exit's order id -> (its leg, limit price, stop price) as last seen
        self.number = 0
        self.stopping = False
        self.watching = None

    def _connection(self):
        if self.connection is None:
            self.connection = Connection(self.reactor, ("localhost", self.processes.port), self.processes.ca_pem)
        return self.connection

    async def call(self, command, **kwargs):
        """The answer, or the PaperTraderError raised; a failed connection is dropped (the next call makes a
        fresh one, so no worker stays avoided)."""
        try:
            return await self._connection().call(command, **kwargs)
        except PaperTraderError as e:
            if e.code in UNCERTAIN:
                self.connection.close()
                self.connection = None
            raise

    async def sign_up(self):
        await self.call(commands.Register, username=self.name, email=f"{self.name}@example.com", password=PASSWORD)
        answer = await self.call(commands.Login, username=self.name, password=PASSWORD, remember=False)
        self.token = answer["token"]

    # The orders ---------------------------------------------------------------------------------------------

    def _coid(self):
        """The client order id of this action's order: the same for the same action in every replay."""
        return f"{self.name}-{self.number}"

    async def _price(self, symbol):
        if symbol not in self.quotes:
            answer = await self.call(commands.Quote, symbol=symbol)
            self.quotes[symbol] = answer["price"]
        return self.quotes[symbol]

    def _money(self, value):
        return str(Decimal(value).quantize(CENTS))

    async def new_order(self):
        rng = self.rng
        if rng.random() < CONTINGENT_SHARE:
            return await self.new_contingent()
        symbol = rng.choice(SYMBOLS)
        side = rng.choices(["buy", "sell"], [3, 2])[0]
        kind = rng.choice(TYPES)
        tif = rng.choice(ALL_TIF if kind in ("market", "limit") else STOP_TIF)
        size = rng.random()
        if size < 0.05:
            quantity = "1000000"  # more than any account can pay or holds: refused
        elif size < 0.25 and kind != "trailing_stop":
            quantity = str(Decimal(rng.randint(1, 5000)).scaleb(-3))  # fractional, 3 decimals
            tif = "day"  # (as at Alpaca: a fractional quantity is a day order)
        else:
            quantity = str(rng.randint(1, 8))
        arguments = dict(token=self.token, client_order_id=self._coid(), side=side, symbol=symbol, type=kind,
                         time_in_force=tif)
        notional = side == "buy" and kind == "market" and tif == "day" and rng.random() < 0.3
        if notional:
            arguments["notional"] = str(rng.choice([50, 250, 1000]))
        else:
            arguments["quantity"] = quantity
        # Prices: the schedule chooses offsets; the quote they apply to is whatever the market says then.
        offset = Decimal(rng.randint(-150, 150)) / 10000
        stop_offset = Decimal(rng.randint(0, 150)) / 10000
        trail_percent = rng.choice(["0.5", "1", "2.5"])
        use_percent = rng.random() < 0.5
        if kind in ("limit", "stop", "stop_limit"):
            price = await self._price(symbol)
            if kind in ("limit", "stop_limit"):
                arguments["limit_price"] = self._money(price * (1 + offset))
            if kind in ("stop", "stop_limit"):
                arguments["stop_price"] = self._money(price * (1 + stop_offset if side == "buy" else 1 - stop_offset))
        if kind == "trailing_stop":
            if use_percent:
                arguments["trail_percent"] = trail_percent
            else:
                price = await self._price(symbol)
                arguments["trail_price"] = self._money(price * Decimal(trail_percent) / 100)
        self.seen.sent[arguments["client_order_id"]] = arguments
        await self.place(commands.PlaceOrder, arguments)

    async def new_contingent(self):
        """A bracket, OTO or OCO order (papertrader/trading/contingent.py), its exits 0.3% to 2% above and below
        the entry's price so that they fill now and then during a run.  A bracket's or OTO's entry buys (the
        users' portfolios are cash accounts): market, limit, stop or stop-limit, day or gtc; an OCO sells part of
        a position held (a bracket instead when there is none), its price given as take_profit, as limit_price or
        as both."""
        rng = self.rng
        # Every draw first, so that the action's choices are the same whatever the market says.
        kind = rng.choices(CLASSES, CLASS_WEIGHTS)[0]
        symbol = rng.choice(SYMBOLS)
        tif = rng.choice(STOP_TIF)
        entry = rng.choice(ENTRY_TYPES)
        size = rng.random()
        whole = rng.randint(1, 8)
        fractional = Decimal(rng.randint(1, 5000)).scaleb(-3)
        share = Decimal(rng.randint(1, 1000)) / 1000  # of the position an OCO sells
        take = Decimal(rng.randint(*EXIT_OFFSETS)) / 10000
        loss = Decimal(rng.randint(*EXIT_OFFSETS)) / 10000
        limit_offset = Decimal(rng.randint(-50, 30)) / 10000
        stop_offset = Decimal(rng.randint(0, 50)) / 10000
        stop_limit_offset = Decimal(rng.randint(0, 30)) / 10000
        stop_loss_limit = rng.random() < 0.3  # a stop-limit stop-loss
        loss_limit_offset = Decimal(rng.randint(0, 50)) / 10000
        which = rng.random()  # an OTO's one exit; how an OCO's price is given
        if size < 0.04:
            quantity = "1000000"  # more than any account can pay: refused
        elif size < 0.07:
            quantity = str(fractional)  # refused: these orders are for whole shares
        else:
            quantity = str(whole)
        arguments = dict(token=self.token, client_order_id=self._coid(), symbol=symbol, time_in_force=tif)
        price = (await self.call(commands.Quote, symbol=symbol))["price"]  # a fresh price: the exits hang near it
        self.quotes[symbol] = price
        if kind == "oco":
            answer = await self.call(commands.Portfolio, token=self.token)
            held = sum((Decimal(p["quantity"]) for p in answer["positions"] if p["symbol"] == symbol), Decimal(0))
            part = (held * share).to_integral_value(rounding=ROUND_DOWN)  # whole shares
            part = part if part >= 1 else held.to_integral_value(rounding=ROUND_DOWN)
            if part < 1:
                kind = "bracket"
            elif size >= 0.07:
                quantity = str(part)
        arguments["order_class"] = kind
        arguments["quantity"] = quantity
        if kind == "oco":
            arguments.update(side="sell", type="limit")
            take_profit = self._money(price * (1 + take))
            if which < 1 / 3:
                arguments["take_profit"] = take_profit
            elif which < 2 / 3:
                arguments["limit_price"] = take_profit
            else:
                arguments["take_profit"] = arguments["limit_price"] = take_profit
            stop_loss = self._money(price * (1 - loss))
        else:
            arguments.update(side="buy", type=entry)
            base = price
            if entry in ("stop", "stop_limit"):
                arguments["stop_price"] = self._money(price * (1 + stop_offset))
                base = Decimal(arguments["stop_price"])
            if entry == "limit":
                arguments["limit_price"] = self._money(price * (1 + limit_offset))
                base = Decimal(arguments["limit_price"])
            elif entry == "stop_limit":
                arguments["limit_price"] = self._money(base * (1 + stop_limit_offset))
                base = Decimal(arguments["limit_price"])
            take_profit = self._money(base * (1 + take))
            stop_loss = self._money(base * (1 - loss))
            if kind == "bracket" or which < 0.5:
                arguments["take_profit"] = take_profit
            if kind == "oto" and which < 0.5:
                stop_loss = None
        if stop_loss is not None:
            arguments["stop_loss"] = stop_loss
            if stop_loss_limit:
                arguments["stop_loss_limit"] = self._money(Decimal(stop_loss) * (1 - loss_limit_offset))
        self.seen.sent[arguments["client_order_id"]] = arguments
        self.counters[f"{kind} sent"] += 1
        await self.place(commands.PlaceOrder, arguments)

    async def place(self, command, arguments):
        """Send an order (new or replacing); record the answer: acknowledged, refused, or lost (pending)."""
        coid = arguments["client_order_id"]
        try:
            order = await self.call(command, **arguments)
        except PaperTraderError as e:
            if e.code in UNCERTAIN:
                self.seen.pending[coid] = (command, arguments)
                self.counters["lost answers"] += 1
                await sleep(self.reactor, 0.1)  # the cluster is restarting: do not spin
            else:
                self.seen.pending.pop(coid, None)
                if coid in self.seen.acknowledged:
                    self.seen.problems.append(f"{coid}: acknowledged as order {self.seen.acknowledged[coid]}, sent"
                                              f" again it was refused: {e.code} {e}")
                else:
                    self.seen.refused[coid] = e.code
                self.counters[f"refused {e.code}"] += 1
            return
        self.seen.pending.pop(coid, None)
        self.seen.refused.pop(coid, None)
        if order["client_order_id"] != coid:
            self.seen.problems.append(f"{coid}: answered with order {order['id']} of client order id"
                                      f" {order['client_order_id']}")
        known = self.seen.acknowledged.get(coid)
        if known is not None and known != order["id"]:
            self.seen.problems.append(f"{coid}: acknowledged as order {known}, sent again it made order {order['id']}")
        if known is None:
            self.seen.acknowledged[coid] = order["id"]
            self.counters["acknowledged"] += 1
            if arguments.get("order_class"):
                self.counters[f"{arguments['order_class']} placed"] += 1
            self.counters.acked()
        else:
            self.counters["resends answered"] += 1
        self.view(order)

    def view(self, order):
        self.seen.views.append((order["id"], order["status"], order["filled_quantity"], order.get("replaced_by")))
        self.last_status[order["id"]] = order["status"]
        if order.get("parent_id") is not None:
            self.seen.exits[order["id"]] = order["parent_id"]
        if order.get("leg"):
            self.exit_prices[order["id"]] = (order["leg"], order.get("limit_price"), order.get("stop_price"))
        for leg in order.get("legs") or ():  # a bracket's, OCO's or OTO's exits
            self.view(leg)

    def _open_order(self):
        """An order id this user last saw open or held (an exit waiting for its entry: cancelling or replacing it
        is refused, order_not_open): something to cancel or replace."""
        candidates = sorted(order_id for order_id, status in self.last_status.items() if status in OPEN | {HELD})
        if not candidates:
            return None
        return self.rng.choice(candidates)

    async def drain(self):
        """Send again, oldest first, every order whose answer was lost, as a client retrying does; stop at the first
        that still finds no answer (the cluster is not back yet)."""
        for coid in sorted(self.seen.pending, key=lambda c: int(c.rsplit("-", 1)[1])):
            command, arguments = self.seen.pending[coid]
            self.counters["resends"] += 1
            await self.place(command, arguments)
            if coid in self.seen.pending:
                return

    async def resend(self):
        """Send again an order whose answer was lost, or (less often) one already acknowledged."""
        if self.seen.pending and self.rng.random() < 0.8:
            coid = self.rng.choice(sorted(self.seen.pending))
            command, arguments = self.seen.pending[coid]
        elif self.seen.acknowledged:
            coid = self.rng.choice(sorted(self.seen.acknowledged))
            arguments = self.seen.sent[coid]
            command = arguments.get("_command", commands.PlaceOrder)
        else:
            return
        self.counters["resends"] += 1
        await self.place(command, {k: v for k, v in arguments.items() if not k.startswith("_")})

    async def cancel(self):
        order_id = self._open_order()
        if order_id is None:
            return
        try:
            order = await self.call(commands.CancelOrder, token=self.token, order_id=order_id)
        except PaperTraderError as e:
            self.counters[f"cancel {e.code}"] += 1
            return
        self.counters["canceled"] += 1
        self.view(order)

    async def cancel_all(self):
        """Cancel every open order (now and then: a user who never did would reach max_open_orders in a long
        run, and every order after that would be refused)."""
        try:
            answer = await self.call(commands.CancelAllOrders, token=self.token)
        except PaperTraderError as e:
            self.counters[f"cancel all {e.code}"] += 1
            return
        self.counters["canceled"] += len(answer["orders"])
        for order in answer["orders"]:
            self.view(order)

    async def replace(self):
        order_id = self._open_order()
        if order_id is None:
            return
        rng = self.rng
        coid = self._coid()
        arguments = dict(token=self.token, order_id=order_id, client_order_id=coid)
        choice = rng.random()
        nudge = 1 + Decimal(rng.randint(-40, 40)) / 10000  # an exit's price moved by up to 0.4%
        exit_prices = self.exit_prices.get(order_id)
        if exit_prices is not None and choice < 0.7:
            # An exit of a bracket, OCO or OTO order: its price moves (a trader trailing a stop by hand); its
            # quantity and time in force are its entry's (refused, invalid_input).
            leg, limit_price, stop_price = exit_prices
            if leg == "take_profit":
                arguments["limit_price"] = self._money(Decimal(limit_price) * nudge)
            else:
                arguments["stop_price"] = self._money(Decimal(stop_price) * nudge)
            self.counters["exit replaces"] += 1
        elif choice < 0.4:
            arguments["quantity"] = str(rng.randint(1, 8))
        elif choice < 0.7:
            arguments["time_in_force"] = rng.choice(STOP_TIF)
        # else: nothing changed: refused (invalid_input 'nothing to replace'), and nothing may be written
        self.seen.sent[coid] = dict(arguments, _command=commands.ReplaceOrder)
        self.counters["replaces"] += 1
        await self.place(commands.ReplaceOrder, arguments)

    async def read_orders(self):
        try:
            answer = await self.call(commands.Orders, token=self.token, limit=50)
        except PaperTraderError:
            return
        for order in answer["orders"]:
            self.view(order)

    async def read_order(self):
        ids = sorted(set(self.seen.acknowledged.values()) | set(self.seen.exits))
        if not ids:
            return
        order_id = self.rng.choice(ids)
        try:
            order = await self.call(commands.GetOrder, token=self.token, order_id=order_id)
        except PaperTraderError:
            return
        self.view(order)
        for fill in order["fills"]:
            self.seen.fills.append((order_id, fill["time"], fill["quantity"], fill["price"]))

    async def act(self):
        """One action, chosen by the seeded random: the n-th action of a user draws from a Random of its own,
        so its kind and parameters are the same in every replay, whatever the actions before it met."""
        await self.drain()
        self.number += 1
        self.rng = random.Random(f"crash-suite:{self.seed}:{self.name}:{self.number}")
        action = self.rng.choices([self.new_order, self.resend, self.cancel, self.replace, self.read_orders,
                                   self.read_order, self.cancel_all], [10, 2, 2, 2, 1, 1, 0.2])[0]
        pause = self.rng.uniform(0, 0.05)
        if action == self.new_order and self.rng.random() < 0.1:
            self.quotes.clear()  # now and then a fresh price
        try:
            await action()
        except PaperTraderError as e:  # a quote that could not be read: the order was not sent
            self.counters[f"no quote: {e.code}"] += 1
        await sleep(self.reactor, pause)

    async def run(self):
        while not self.stopping:
            await self.act()

    def pushed(self, event):
        order = event["order"]
        self.seen.events.append((order["id"], event["event"], event.get("quantity"), event.get("price"),
                                 event.get("position_quantity")))
        self.view(order)
        self.counters["events pushed"] += 1

    async def watch(self):
        """Watch the account's order events (``watch --orders``) on a connection of its own, subscribing again
        whenever a kill cuts it."""
        while not self.stopping:
            self.watching = Connection(self.reactor, ("localhost", self.processes.port), self.processes.ca_pem)
            try:
                await self.watching.call(commands.WatchOrders, token=self.token)
                if self.stopping:  # stopped while subscribing: the connection was not there to close yet
                    break
                proto = self.watching.proto
                proto.on_order_event = self.pushed
                await proto.ended  # a kill, or stop() closing it
            except PaperTraderError:
                await sleep(self.reactor, 0.2)
            finally:
                self.watching.close()

    def stop(self):
        self.stopping = True
        if self.watching is not None:
            self.watching.close()

    async def settle(self, deadline):
        """Send again every order whose answer was lost until each has a definite answer (or time runs out)."""
        while self.seen.pending and time.monotonic() < deadline:
            coid = sorted(self.seen.pending)[0]
            command, arguments = self.seen.pending[coid]
            await self.place(command, arguments)
            if coid in self.seen.pending:
                await sleep(self.reactor, 0.2)
        # The final word on every order this user knows of (the exits of bracket, OCO and OTO orders last: their
        # parents' answers name them).
        for coid, order_id in sorted(self.seen.acknowledged.items()):
            await self._final_word(coid, order_id)
        for order_id, parent in sorted(self.seen.exits.items()):
            await self._final_word(f"exit of order {parent}", order_id)

    async def _final_word(self, coid, order_id):
        try:
            order = await self.call(commands.GetOrder, token=self.token, order_id=order_id)
        except PaperTraderError as e:
            self.seen.problems.append(f"{coid}: order {order_id} could not be read at the end: {e.code} {e}")
            return
        self.view(order)
        for fill in order["fills"]:
            self.seen.fills.append((order_id, fill["time"], fill["quantity"], fill["price"]))


class Counters(Counter):
    """Counts of what happened, and waiters for "N more acknowledgements"."""

    def __init__(self):
        super().__init__()
        self.waiters = []

    def acked(self):
        for item in list(self.waiters):
            if self["acknowledged"] >= item[0]:
                self.waiters.remove(item)
                item[1].callback(None)

    def wait_acks(self, n):
        d = defer.Deferred()
        self.waiters.append((self["acknowledged"] + n, d))
        return d


# --- the run -----------------------------------------------------------------------------------------------


@dataclass
class Summary:
    seed: int
    kind: str
    kills: Counter
    counters: Counter
    violations: list
    seconds: float
    fills: int = 0
    orders: int = 0
    traders: list = field(default_factory=list, repr=False)  # what each user saw (to check again)
    data_dir: str = ""
    contingent: Counter = field(default_factory=Counter)  # bracket, OCO and OTO orders and exits in the database

    def text(self):
        kills = ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items()))
        c, shown = self.counters, sum(len(t.seen.exits) for t in self.traders)
        # An exit that replaced another (its price moved) was acknowledged by its own client order id: counted once.
        made = sum(len(set(t.seen.exits) - set(t.seen.acknowledged.values())) for t in self.traders)
        stored = self.contingent
        lines = [f"crash suite, seed {self.seed}, {self.kind}: {sum(self.kills.values())} kills ({kills}) in"
                 f" {self.seconds:.0f} s",
                 f"  orders acknowledged {self.counters['acknowledged']} (and {made} exits of theirs), orders in the"
                 f" database {self.orders},"
                 f" fills {self.fills}, order events pushed to clients {self.counters['events pushed']},"
                 f" answers lost to a kill {self.counters['lost answers']}, resends"
                 f" {self.counters['resends']}, replaces {self.counters['replaces']} (of exits' prices"
                 f" {self.counters['exit replaces']}), cancels"
                 f" {self.counters['canceled']}",
                 f"  bracket orders placed {c['bracket placed']} (sent {c['bracket sent']}), oto {c['oto placed']}"
                 f" (sent {c['oto sent']}), oco {c['oco placed']} (sent {c['oco sent']}); in the database: bracket"
                 f" {stored['bracket']}, oto {stored['oto']}, oco {stored['oco']}, exits {stored['exits']} (of them"
                 f" {stored['exit orders']} hang from another order; the clients were shown {shown}), exits filled"
                 f" {stored['exits filled']} (whole {stored['exits filled whole']})",
                 "  refused: " + (", ".join(f"{k[8:]} {n}" for k, n in sorted(self.counters.items())
                                            if k.startswith("refused ")) or "none"),
                 "  cancels refused: " + (", ".join(f"{k[7:]} {n}" for k, n in sorted(self.counters.items())
                                                    if k.startswith("cancel ")) or "none"),
                 f"  violations: {len(self.violations)}"]
        lines += [f"    {v}" for v in self.violations[:50]]
        if len(self.violations) > 50:
            lines.append(f"    ... and {len(self.violations) - 50} more")
        lines.append(f"  replay: {replay_command(self.seed, sum(self.kills.values()), self.kind)}")
        return "\n".join(lines)


def kill_schedule(seed, kills, workers):
    """The seeded schedule: for each kill, (what: "master", "all" or a worker, trigger: ("acks", N) or
    ("delay", seconds))."""
    rng = random.Random(f"crash-suite:{seed}:kills")
    names = [f"w{i + 1}" for i in range(workers)]
    schedule = []
    for _ in range(kills):
        what = rng.choices(["master", "worker", "all"], [5, 3, 2])[0]
        if what == "worker":
            what = rng.choice(names)
        trigger = ("acks", rng.randint(1, 4)) if rng.random() < 0.5 else ("delay", round(rng.uniform(0.05, 1.5), 3))
        schedule.append((what, trigger))
    return schedule


async def run(reactor, seed, kills, database_url, workdir, kind, users=3, workers=2, say=print, minutes=None):
    """Run the crash suite once; a Summary (its ``violations`` empty when every check passed).  With ``minutes``,
    no kill starts after that many minutes (the run then settles and checks as after its last kill)."""
    started = time.monotonic()
    processes = Processes(reactor, workdir, database_url, workers)
    processes.prepare()
    counters = Counters()
    done = Counter()
    violations = []
    traders = [Trader(reactor, processes, i + 1, seed, counters) for i in range(users)]
    say(f"crash suite: seed {seed}, {kills} kills, {kind}, {users} users, {workers} workers, in {workdir}")
    stopped = reactor.addSystemEventTrigger("before", "shutdown", processes.kill_now)
    try:
        await processes.start_all()
        for trader in traders:
            await trader.sign_up()
        running = [defer.ensureDeferred(t.run()) for t in traders] + [defer.ensureDeferred(t.watch()) for t in traders]
        try:
            for number, (what, trigger) in enumerate(kill_schedule(seed, kills, workers), 1):
                if minutes is not None and time.monotonic() - started > minutes * 60:
                    say(f"  {minutes} minutes are over: no more kills after {number - 1}")
                    break
                if trigger[0] == "acks":
                    try:
                        await bounded(reactor, counters.wait_acks(trigger[1]), ACK_TIMEOUT,
                                      f"{trigger[1]} acknowledgements")
                    except RuntimeError as e:
                        violations.append(f"kill {number}: no progress: {e}")
                else:
                    await sleep(reactor, trigger[1])
                await processes.kill(what)
                done["worker" if what.startswith("w") else what] += 1
                if number % 50 == 0:
                    say(f"  {number} kills, {counters['acknowledged']} orders acknowledged,"
                        f" {time.monotonic() - started:.0f} s")
        finally:
            for trader in traders:
                trader.stop()
            results = await bounded(reactor, defer.DeferredList(running, consumeErrors=True), 120,
                                    "the users to finish their last commands")
            for ok, result in results:
                if not ok:
                    violations.append(f"a trader failed: {result.getTraceback()}")
        deadline = time.monotonic() + SETTLE_TIMEOUT
        for trader in traders:
            await trader.settle(deadline)
            if trader.seen.pending:
                violations.append(f"{trader.name}: {len(trader.seen.pending)} orders still without an answer after"
                                  f" {SETTLE_TIMEOUT} s: {sorted(trader.seen.pending)[:5]}")
    except BaseException:  # a failure, or the test's ceiling cancelling the run: leave no process behind
        await processes.kill_all()
        raise
    finally:
        for trader in traders:
            if trader.connection is not None:
                trader.connection.close()
        await processes.stop()
        reactor.removeSystemEventTrigger(stopped)
    report = await check(database_url, processes.data_dir, traders)
    violations += report["violations"]
    violations += tracebacks(processes.log_files())
    return Summary(seed, kind, done, counters, violations, time.monotonic() - started, report["fills"],
                   report["orders"], traders, processes.data_dir, report["contingent"])


def tracebacks(paths):
    found = []
    for path in paths:
        with open(path, "rb") as f:
            text = f.read()
        if b"Traceback" in text:
            at = text.index(b"Traceback")
            found.append(f"a Traceback in {path}: {text[at:at + 1500].decode(errors='replace')}")
    return found


# --- the checks --------------------------------------------------------------------------------------------


def units(value):
    """A quantity (Decimal) in 1e-6 units."""
    return int((Decimal(value) / UNITS).to_integral_exact())


async def check(database_url, data_dir, traders):
    """Every invariant of the module docstring, per account; {"violations": [...], "fills": N, "orders": N}."""
    db = Database(database_url, data_dir)
    violations = []
    total_fills = total_orders = 0
    contingent = Counter()  # bracket, OCO and OTO orders in the database, their exits, those that filled
    try:
        for trader in traders:
            v = []
            seen = trader.seen
            v += [f"client saw: {p}" for p in seen.problems]
            # The users trade their default portfolio, the only one they have.
            rows = await db.query("SELECT p.id, p.cash_cents FROM portfolios p JOIN accounts a ON a.id = p.account_id"
                                  " WHERE a.username = ?", (trader.name,))
            if len(rows) != 1:
                violations.append(f"{trader.name}: {len(rows)} portfolios")
                continue
            [(account, cash)] = rows
            orders = {r[0]: r for r in await db.query(
                "SELECT id, client_order_id, status, quantity_units, notional_cents, replaces, replaced_by,"
                " filled_adjustment_units, order_class, leg, parent_id FROM orders WHERE portfolio_id = ?",
                (account,))}
            total_orders += len(orders)
            ledger = await db.query(
                "SELECT id, order_id, kind, time, side, symbol, quantity_units, price_units, amount_cents,"
                " cash_after_cents, position_after_units FROM transactions WHERE portfolio_id = ? ORDER BY id",
                (account,))
            events = await db.query("SELECT order_id, kind, transaction_id FROM order_events WHERE portfolio_id = ?"
                                    " ORDER BY id", (account,))
            positions = dict(await db.query("SELECT symbol, quantity_units FROM positions WHERE portfolio_id = ?",
                                            (account,)))
            by_coid = defaultdict(list)
            for order_id, coid, *_ in orders.values():
                by_coid[coid].append(order_id)
            # Acknowledged orders: exactly once; nothing made that no one sent; nothing made that was refused.
            for coid, order_id in seen.acknowledged.items():
                row = orders.get(order_id)
                if row is None:
                    v.append(f"acknowledged order {order_id} ({coid}) is not in the database")
                elif row[1] != coid:
                    v.append(f"acknowledged order {order_id} has client order id {row[1]}, sent as {coid}")
            for coid, ids in by_coid.items():
                if len(ids) > 1:
                    v.append(f"client order id {coid} maps to orders {ids}")
                exits = [i for i in ids if orders[i][10] is not None and coid not in seen.sent]
                if exits:  # the exits of bracket, OCO and OTO orders: client order ids of the server's making
                    for order_id in exits:
                        parent = orders[order_id][10]
                        if parent not in orders:
                            v.append(f"exit order {order_id} ({coid}) hangs from order {parent}, which is not an order"
                                     " of the account")
                        elif seen.exits.get(order_id) != parent:
                            v.append(f"exit order {order_id} ({coid}) of order {parent} was never shown to the client"
                                     f" as its exit (it saw {seen.exits.get(order_id)})")
                    continue
                if coid not in seen.sent:
                    v.append(f"orders {ids} have client order id {coid}, which the client never sent")
                elif coid in seen.refused:
                    v.append(f"order {ids} exists, but {coid} was refused ({seen.refused[coid]})")
                elif coid not in seen.acknowledged and coid not in seen.pending:
                    v.append(f"order {ids} ({coid}) exists but was never acknowledged")
            # Fills, events, statuses.
            fills = defaultdict(list)
            for row in ledger:
                if row[2] == "fill":
                    fills[row[1]].append(row)
            total_fills += sum(len(f) for f in fills.values())
            kinds = defaultdict(Counter)
            fill_events = defaultdict(set)
            transaction_ids = {row[0]: row[1] for row in ledger}
            for order_id, kind, transaction_id in events:
                kinds[order_id][kind] += 1
                if kind in ("fill", "partial_fill"):
                    if transaction_ids.get(transaction_id) != order_id:
                        v.append(f"order {order_id}: a {kind} event names transaction {transaction_id}, not one of"
                                 " its fills")
                    fill_events[order_id].add(transaction_id)
            filled_of = {}
            for order_id, (_, coid, status, quantity, notional, replaces, replaced_by, adjustment, order_class, leg,
                           parent) in orders.items():
                filled = filled_of[order_id] = sum(f[6] for f in fills[order_id]) + (adjustment or 0)
                k = kinds[order_id]
                where = f"order {order_id} ({coid}, {status})"
                if status not in OPEN | FINAL | {HELD}:
                    v.append(f"{where}: unknown status")
                # A bracket's or OTO's exit is held (no event) until its entry ends, then accepted as it opens, or
                # canceled without ever opening (the entry filled nothing, or all was canceled at once).
                held_first = parent is not None and order_class in ("bracket", "oto")
                if status == HELD:
                    if not held_first:
                        v.append(f"{where}: held, but not the exit of a bracket or OTO order")
                    if k:
                        v.append(f"{where}: events {dict(k)} while held")
                    if filled:
                        v.append(f"{where}: filled {filled} units while held")
                elif held_first and status in FINAL and not filled:
                    if k["accepted"] > 1:
                        v.append(f"{where}: {k['accepted']} accepted events")
                elif k["accepted"] != 1:
                    v.append(f"{where}: {k['accepted']} accepted events")
                if len(fills[order_id]) != k["fill"] + k["partial_fill"] or \
                        fill_events[order_id] != {f[0] for f in fills[order_id]}:
                    v.append(f"{where}: {len(fills[order_id])} fills but {k['fill'] + k['partial_fill']} fill events")
                if quantity is not None and filled > quantity:
                    v.append(f"{where}: filled {filled} units of {quantity}")
                if status == "filled":
                    if k["fill"] != 1:
                        v.append(f"{where}: {k['fill']} fill events")
                    if quantity is not None and filled != quantity:
                        v.append(f"{where}: filled {filled} units of {quantity}")
                elif status == "partially_filled":
                    if not (0 < filled and (quantity is None or filled < quantity)):
                        v.append(f"{where}: filled {filled} units of {quantity}")
                elif status == "new" and filled:
                    v.append(f"{where}: filled {filled} units while new")
                if status in FINAL - {"filled"} and k[status] != 1:
                    v.append(f"{where}: {k[status]} {status} events")
                if status in OPEN and any(k[s] for s in FINAL - {"filled"}) or status in OPEN and k["fill"]:
                    v.append(f"{where}: final events {dict(k)} on an open order")
                if status == "replaced" and (replaced_by is None or replaced_by not in orders):
                    v.append(f"{where}: replaced by {replaced_by}, which is not an order of the account")
                if replaces is not None and (replaces not in orders or orders[replaces][6] != order_id):
                    v.append(f"{where}: replaces {replaces}, which does not name it as its successor")
            # Bracket, OCO and OTO orders: each group (its first part and the exits that hang from it) keeps its ties.
            groups = defaultdict(list)
            for order_id, row in orders.items():
                if row[8] != "simple" or row[9] is not None or row[10] is not None:
                    groups[latest(row[10] if row[10] is not None else order_id, orders)].append(order_id)
            for first, members in sorted(groups.items()):
                v += check_group(first, sorted(members), orders, filled_of, fills, seen.sent)
                contingent[orders[first][8] if first in orders else "?"] += 1
                for order_id in members:
                    contingent["exit orders"] += orders[order_id][10] is not None  # (not an OCO's first part)
                    if orders[order_id][9] is not None:
                        contingent["exits"] += 1
                        contingent["exits filled"] += filled_of[order_id] > 0
                        contingent["exits filled whole"] += orders[order_id][2] == "filled"
            # Cash: starting cash plus the signed amounts, row by row; positions: the sum of their fills.
            balance = int(STARTING_CASH * 100)
            held = Counter()
            for row in ledger:
                balance += row[8]
                if row[9] != balance:
                    v.append(f"transaction {row[0]}: cash after {row[9]} cents, the history says {balance}")
                    balance = row[9]
                if row[2] == "fill":
                    held[row[5]] += row[6] if row[4] == "buy" else -row[6]
                    if row[10] is not None and row[10] != held[row[5]]:
                        v.append(f"transaction {row[0]}: position after {row[10]}, the fills say {held[row[5]]}")
                elif row[2] == "split":
                    v.append(f"transaction {row[0]}: a split in the simulated market")
                if balance < 0:
                    v.append(f"transaction {row[0]}: cash {balance} cents, below zero")
            if cash != balance:
                v.append(f"cash {cash} cents, the history adds up to {balance}")
            for symbol in set(held) | set(positions):
                if positions.get(symbol, 0) != held[symbol]:
                    v.append(f"position {symbol} {positions.get(symbol, 0)} units, its fills add up to {held[symbol]}")
                if held[symbol] < 0:
                    v.append(f"position {symbol} {held[symbol]} units, below zero")
            # What the client saw.
            for order_id, status, filled, replaced_by in seen.views:
                row = orders.get(order_id)
                if row is None:
                    v.append(f"the client saw order {order_id}, which is not in the database")
                    continue
                db_filled = sum(f[6] for f in fills[order_id]) + (row[7] or 0)
                if units(filled) > db_filled:
                    v.append(f"the client saw order {order_id} filled {filled}; the database has {db_filled} units")
                if status in FINAL and (row[2] != status or units(filled) != db_filled):
                    v.append(f"the client saw order {order_id} {status} with {filled} filled; the database has it"
                             f" {row[2]} with {db_filled} units")
                if status == "replaced" and replaced_by is not None and row[6] != replaced_by:
                    v.append(f"the client saw order {order_id} replaced by {replaced_by}; the database says {row[6]}")
            for order_id, when, quantity, price in seen.fills:
                matches = [f for f in fills[order_id] if f[6] == units(quantity)
                           and Decimal(f[7]).scaleb(-4) == price]
                if not matches:
                    v.append(f"the client saw a fill of order {order_id} ({quantity} at {price}, {when}) that the"
                             " database does not have")
            pushed = Counter((order_id, kind) for order_id, kind, *_ in seen.events)
            for (order_id, kind), n in sorted(pushed.items()):
                if n > kinds[order_id][kind]:
                    v.append(f"the client was pushed {n} {kind} events of order {order_id}; the database has"
                             f" {kinds[order_id][kind]}")
            after = {row[0]: row[10] for row in ledger}
            for order_id, kind, quantity, price, position in seen.events:
                if kind not in ("fill", "partial_fill"):
                    continue
                matches = [f for f in fills[order_id] if f[6] == units(quantity) and Decimal(f[7]).scaleb(-4) == price
                           and (position is None or after[f[0]] == units(position))]
                if not matches:
                    v.append(f"the client was pushed a {kind} of order {order_id} ({quantity} at {price}, position"
                             f" {position}) that the database does not have")
            violations += [f"{trader.name}: {text}" for text in v]
    finally:
        db.close()
    return {"violations": violations, "fills": total_fills, "orders": total_orders, "contingent": contingent}


def latest(order_id, orders):
    """The order that ``order_id`` is now: itself, or the last of the orders that replaced it."""
    seen = set()
    while order_id in orders and orders[order_id][2] == "replaced" and orders[order_id][6] in orders \
            and order_id not in seen:
        seen.add(order_id)
        order_id = orders[order_id][6]
    return order_id


def check_group(first, members, orders, filled, fills, sent):
    """The ties of one bracket, OCO or OTO order that papertrader/trading/contingent.py's docstring guarantees;
    a list of violations.  ``first``: its first part's id (a bracket's or OTO's entry, an OCO's take-profit);
    ``members``: every part's id; ``orders``: the account's order rows (see :func:`check`); ``filled``: order id
    -> units filled; ``fills``: order id -> its fill rows; ``sent``: client order id -> the arguments sent."""
    row = orders.get(first)
    if row is None:
        return [f"orders {members} hang from order {first}, which is not an order of the account"]
    kind = row[8]
    where = f"{kind} order {first} ({row[1]})"
    parts = [orders[i] for i in members]
    # The parts as they are now (an exit whose prices were replaced: its successor), and every exit that was.
    exits = [r for r in parts if r[0] != first and r[2] != "replaced"]
    every_exit = [r for r in parts if r[9] is not None]
    v = []
    # Its shape: a bracket's entry with a take-profit and a stop-loss, an OTO's with one of them, an OCO's
    # take-profit with a stop-loss; every part of the same class.
    legs = sorted(e[9] or "none" for e in exits)
    shapes = {"bracket": [["stop_loss", "take_profit"]], "oto": [["stop_loss"], ["take_profit"]],
              "oco": [["stop_loss"]]}
    if kind not in shapes or legs not in shapes[kind] or row[10] is not None or \
            row[9] != ("take_profit" if kind == "oco" else None) or any(e[8] != kind for e in parts):
        return [f"{where}: parts {[(r[0], r[2], r[8], r[9], r[10]) for r in parts]} (id, status, class, leg, parent)"
                " are not the shape of a bracket, OCO or OTO order"]
    both = exits if kind != "oco" else [row] + exits  # the exits: they cover the same shares
    fill_text = ", ".join(f"order {e[0]} {e[2]} filled {filled[e[0]]} of {e[3]}" for e in parts)
    together = sum(filled[e[0]] for e in every_exit)
    if kind == "oco":
        # Together the two exits never sell more than the OCO order was for (as first placed).
        origin = first
        while orders[origin][5] in orders:
            origin = orders[origin][5]
        quantity = sent.get(orders[origin][1], {}).get("quantity")
        if quantity is not None and together > units(quantity):
            v.append(f"{where}: its exits filled {together} units together, more than the {units(quantity)} ordered"
                     f" ({fill_text})")
    else:
        entry, entry_filled = row[2], filled[first]
        # The exits never sell more than the entry bought.
        if together > entry_filled:
            v.append(f"{where}: its exits filled {together} units together, more than the entry's {entry_filled}"
                     f" ({fill_text})")
        for e in exits:
            # Held while the entry is open, and only then (a held exit cannot be canceled on its own).
            if e[2] == HELD and entry not in OPEN:
                v.append(f"{where}: exit {e[0]} is held, but its entry is {entry} ({fill_text})")
            if entry in OPEN and e[2] != HELD:
                v.append(f"{where}: exit {e[0]} is {e[2]} while its entry is {entry} ({fill_text})")
        for e in every_exit:
            # An entry that ended with nothing filled leaves nothing to close: its exits never opened.
            if entry in FINAL and not entry_filled and (filled[e[0]] or e[2] in OPEN | {HELD}):
                v.append(f"{where}: the entry ended ({entry}) with nothing filled, but exit {e[0]} is {e[2]} with"
                         f" {filled[e[0]]} units filled")
            # Opened for what the entry filled (and less as the other exit fills).
            if (e[2] in OPEN or filled[e[0]]) and e[3] is not None and e[3] > entry_filled:
                v.append(f"{where}: exit {e[0]} is for {e[3]} units, more than the entry's {entry_filled} filled")
        # The exits trade from the market step after the one the entry's last fill was in: their fills come later.
        entry_last = max((f[0] for f in fills[first]), default=None)
        exit_first = min((f[0] for e in every_exit for f in fills[e[0]]), default=None)
        if exit_first is not None and entry_last is not None and exit_first < entry_last:
            v.append(f"{where}: an exit filled (transaction {exit_first}) before the entry's last fill (transaction"
                     f" {entry_last})")
    if len(both) == 2:
        a, b = both
        open_ = [e for e in both if e[2] in OPEN]
        # What one fills is taken from the other: both open, they have the same left to fill.
        if len(open_) == 2 and a[3] - filled[a[0]] != b[3] - filled[b[0]]:
            v.append(f"{where}: its exits are both open with different quantities left ({fill_text})")
        # When one ends, the other is canceled.
        if len(open_) == 1 and any(e[2] in FINAL for e in both):
            v.append(f"{where}: one exit ended, the other is still open ({fill_text})")
    return v
