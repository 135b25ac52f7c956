#!/usr/bin/env python
"""Thousands of clients on one worker, against a bare AMP-over-TLS server under the same load, in one run.

Every server is its own process: the master and one worker as ``twistd papertrader-master`` and
``twistd papertrader-worker`` (simulated market, an update every ``--interval`` s, 5 by default), the baseline as
``bench/bare_amp.py`` (canned answers to the same commands, with a certificate of the same CA).  The load comes
from ``--generators`` processes running ``bench/amp_load.py``: for each count of ``--clients`` (1000 and 3000),
that many TLS connections, each watching one symbol's prices and its own account's order events, sending
``Quote`` and ``PlaceOrder`` (a limit buy far below the price, which stays open: the acknowledgement) at
``--rate`` calls per second in all (an open loop: the offered rate does not wait for the server), first to
the bare server, then to the worker.

    .venv/bin/python bench/bench_load.py          # --clients 1000,3000 --rate 4000 --seconds 10 --interval 5
    .venv/bin/python bench/bench_load.py --database postgresql://postgres@127.0.0.1:5432/test

Prints, per client count and server: p50/p99/max of each command's latency and the worker/bare ratios; the
server's memory (RSS) idle, with the clients connected, after the load and after they left, and per connected
client; its CPU seconds (``/proc/PID/stat``) per 1,000 calls (and the master's, which the worker's calls cost
too); the load average of the machine during the run.  See bench/README.md.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_DOWN, Decimal
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from papertrader import tls  # noqa: E402
from papertrader.master import files  # noqa: E402
from papertrader.market.setup import SIMULATED_ASSETS  # noqa: E402
from bench.harness import bench_database, drop_schema, free_port, percentile  # noqa: E402

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
#: Seconds a server has to start, and a generator to connect its clients or to finish.
START_TIMEOUT = 120.0
PASSWORD = "benchmark-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: A bare server whose p50 is above this (ms) is queueing its calls: past the machine's capacity (it answers a
#: call in well under a millisecond; its p50 at 3,000 clients on a quiet machine is about 2 ms).
PAST_CAPACITY_MS = 100
#: The share of the machine's CPU time busy above which a load's latencies include waiting for a CPU.
BUSY = 0.9


def raise_file_limit():
    """Raise the soft limit of open files to the hard one (the children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_jiffies():
    """(stolen, idle, all) CPU time of the machine since boot, in clock ticks (/proc/stat): the time the host gave
    our virtual CPUs to others while we wanted them ("steal") makes every latency of a run longer; idle (with
    iowait) is what no process wanted."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return values[7] if len(values) > 7 else 0, values[3] + values[4], sum(values[:8])


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))


def wait_for_line(path, text, proc, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: the process ended ({proc.returncode}):\n" + tail(path))
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                content = f.read()
            if text in content:
                return content
        time.sleep(0.1)
    raise RuntimeError(f"{path}: no {text!r} after {timeout:.0f} s:\n" + tail(path))


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Servers:
    """The master and worker processes (twistd) and the bare server's, their logs in the data dir."""

    def __init__(self, data_dir, args):
        self.data_dir, self.args = data_dir, args
        self.procs = []

    def spawn(self, name, argv):
        log = os.path.join(self.data_dir, f"{name}.out")
        out = open(log, "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env(),
                                cwd=self.data_dir)
        out.close()
        self.procs.append(proc)
        return proc, log

    def settings(self):
        a = self.args
        return ["--provider", "simulated", "--assets", ",".join(SIMULATED_ASSETS), "--update-interval",
                str(a.interval), "--bcrypt-rounds", "4", "--registrations-per-address", "100000",
                "--login-free-attempts", "1000", "--login-ceiling", "100000", "--max-open-orders", "100000",
                "--heartbeat-interval", "5",
                # Every client of the benchmark connects from 127.0.0.1: no per-address cap (README, Connection limits).
                "--max-connections-per-address", "1000000"] + (["--log-memory-size", str(a.log_memory_size)]
                                                 if a.log_memory_size else [])

    def start_cluster(self, database):
        d = self.data_dir
        files.ensure_master_files(d)
        subprocess.run([sys.executable, "-m", "papertrader.admin", "--data-dir", d]
                       + (["--database", database] if database else []) + ["register-worker", "w1"],
                       check=True, capture_output=True, env=env())
        master_port = free_port()
        profile = (["--profile", self.args.profile_master, "--profiler", "cprofile", "--savestats"]
                   if self.args.profile_master else [])
        master, master_log = self.spawn("master", [
            sys.executable, "-c", TWISTD, "-n", "--pidfile="] + profile + [
            "papertrader-master", "--data-dir", d, "--port",
            tls.listen_description(master_port, "127.0.0.1", os.path.join(d, files.MASTER_CERT))]
            + (["--database", database] if database else []) + self.settings())
        wait_for_line(master_log, "master listening on port", master)
        bundle = files.worker_dir(d, "w1")
        self.worker_port = free_port()
        profile = ["--profile", self.args.profile, "--profiler", "cprofile", "--savestats"] if self.args.profile else []
        worker, worker_log = self.spawn("worker", [
            sys.executable, "-c", TWISTD, "-n", "--pidfile="] + profile + [
            "papertrader-worker", "--data-dir", bundle, "--name", "w1", "--master", f"localhost:{master_port}",
            "--port",
            tls.listen_description(self.worker_port, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT))]
            + self.settings())
        wait_for_line(worker_log, "linked to the master", worker)
        self.master, self.worker = master, worker

    def start_bare(self):
        ca = tls.CertificateAuthority.ensure(self.data_dir)
        cert = os.path.join(self.data_dir, "bare.pem")
        ca.issue("PaperTrader bench bare server", tls.default_hostnames(), cert)
        self.bare, log = self.spawn("bare", [sys.executable, os.path.join(ROOT, "bench", "bare_amp.py"), "--cert",
                                             cert, "--interval", str(self.args.interval), "--gc", self.args.bare_gc])
        content = wait_for_line(log, "listening ", self.bare)
        self.bare_port = int(content.split("listening ")[1].split()[0])

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Generator:
    """One amp_load.py process: a JSON spec on its stdin, then lines; its answers one JSON object a line."""

    #: Every generator started (ended on the way out, whatever happens).
    started = []

    def __init__(self, spec):
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "amp_load.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env(), text=True)
        self.started.append(self.proc)
        self.send(json.dumps(spec))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self, state):
        if os.environ.get("BENCH_VERBOSE"):
            print(f"[{time.strftime('%H:%M:%S')}] waiting for {state} from generator {self.proc.pid}", file=sys.stderr,
                  flush=True)
        line = self.proc.stdout.readline()  # the generator times out its own waits (TIMEOUT per call)
        if not line:
            self.proc.wait()
            raise RuntimeError(f"a load generator ended ({self.proc.returncode}) before saying {state!r}")
        answer = json.loads(line)
        if answer.get("state") != state:
            raise RuntimeError(f"a load generator said {answer.get('state')!r}, not {state!r}")
        return answer

    def end(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_accounts(port, ca, count):
    started = time.perf_counter()
    g = Generator(dict(mode="accounts", port=port, ca=ca, count=count, prefix="load", password=PASSWORD,
                       assets=len(SIMULATED_ASSETS)))
    answer = g.read("accounts")
    g.end()
    return answer["tokens"], answer["prices"], time.perf_counter() - started


def run_load(label, pid, port, ca, clients, tokens, prices, args, tag, extra_pids=()):
    """One load on one server: the figures (a dict)."""
    symbols = sorted(prices)
    limits = {s: str((Decimal(p) / 2).quantize(Decimal("0.01"), rounding=ROUND_DOWN)) for s, p in prices.items()}
    per_generator = [list(range(g, clients, args.generators)) for g in range(args.generators)]
    rss_idle = rss_kb(pid)
    load_before = loadavg()
    gens = []
    started = time.perf_counter()
    for g, indices in enumerate(per_generator):
        # Each client orders its own symbol at half its price: the order stays open (an acknowledgement only).
        symbol_of = {i: symbols[i % len(symbols)] for i in indices}
        spec = dict(mode="load", port=port, ca=ca, clients=[dict(token=tokens[i], symbol=symbol_of[i],
                                                                 limit_price=limits[symbol_of[i]])
                                                            for i in indices],
                    rate=args.rate / args.generators, warmup=args.warmup, seconds=args.seconds, orders=args.orders,
                    order=dict(side="buy", quantity="1", type="limit", time_in_force="gtc"),
                    watch=True, tag=f"{tag}-{g}", seed=g + 1)
        gens.append(Generator(spec))
    retries = sum(g.read("connected")["retries"] for g in gens)
    connect_seconds = time.perf_counter() - started
    time.sleep(1.0)  # the last watches settle
    rss_connected = rss_kb(pid)
    cpu_before = cpu_seconds(pid)
    extra_before = [cpu_seconds(p) for p in extra_pids]
    gens_before = [cpu_seconds(g.proc.pid) for g in gens]
    steal_before, idle_before, all_before = cpu_jiffies()
    for g in gens:
        g.send("go")
    results = [g.read("done") for g in gens]
    cpu = cpu_seconds(pid) - cpu_before
    steal_after, idle_after, all_after = cpu_jiffies()
    steal = (steal_after - steal_before) / max(1, all_after - all_before)
    busy = 1 - (idle_after - idle_before) / max(1, all_after - all_before)
    gens_cpu = sum(cpu_seconds(g.proc.pid) for g in gens) - sum(gens_before)
    extra_cpu = [cpu_seconds(p) - b for p, b in zip(extra_pids, extra_before)]
    load_during = loadavg()
    rss_loaded = rss_kb(pid)
    for g in gens:
        g.send("close")
    for g in gens:
        g.read("closed")
        g.end()
    time.sleep(2.0)
    rss_left = rss_kb(pid)
    latencies = {what: sorted(x for r in results for x in r["latencies"][what]) for what in ("quote", "order")}
    errors = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    sent = sum(r["sent"] for r in results)
    pushes = {k: sum(r["pushes"][k] for r in results) for k in ("ticks", "events", "notices")}
    return dict(label=label, clients=clients, sent=sent, latencies=latencies, errors=errors, pushes=pushes,
                cpu=cpu, extra_cpu=extra_cpu, rss_idle=rss_idle, rss_connected=rss_connected, rss_loaded=rss_loaded,
                rss_left=rss_left, connect_seconds=connect_seconds, retries=retries, load_before=load_before,
                load_during=load_during, steal=steal, busy=busy, gens_cpu=gens_cpu,
                lag_p99=max((r["lag_p99"] or 0) for r in results) * 1000,
                drained=max(r["drained_seconds"] for r in results))


def figures(r):
    out = {}
    for what, values in r["latencies"].items():
        if values:
            out[what] = (percentile(values, 50), percentile(values, 99), values[-1], len(values))
    return out


def report(r):
    lines = [f"  {r['label']}: {r['clients']} clients connected in {r['connect_seconds']:.1f} s ({r['retries']}"
             " attempts"
             f" timed out and were made again); {r['sent']} calls"
             f" (drained {r['drained']:.1f} s after the start); pushes received: {r['pushes']['ticks']} ticks,"
             f" {r['pushes']['events']} order events, {r['pushes']['notices']} notices; send lag p99"
             f" {r['lag_p99']:.1f} ms; errors: {r['errors'] or 'none'}"]
    for what, (p50, p99, top, n) in figures(r).items():
        lines.append(f"    {what:5}: {n:6} measured, p50 {p50:7.2f} ms, p99 {p99:7.2f} ms, max {top:7.1f} ms")
    per_client = (r["rss_connected"] - r["rss_idle"]) * 1024 / r["clients"]
    lines.append(f"    memory (RSS): idle {r['rss_idle'] / 1024:.1f} MB, {r['clients']} connected"
                 f" {r['rss_connected'] / 1024:.1f} MB ({per_client / 1024:.1f} KB per client), after the load"
                 f" {r['rss_loaded'] / 1024:.1f} MB, after they left {r['rss_left'] / 1024:.1f} MB")
    cpu = f"    CPU: {r['cpu']:.2f} s, {r['cpu'] / r['sent'] * 1000:.3f} s per 1,000 calls"
    if r["extra_cpu"]:
        cpu += f" (the master: {r['extra_cpu'][0]:.2f} s, {r['extra_cpu'][0] / r['sent'] * 1000:.3f} s per 1,000)"
    lines.append(cpu + f"; the load generators: {r['gens_cpu']:.2f} s; the machine's CPUs busy {r['busy']:.0%} of the"
                 " time")
    lines.append(f"    load average (1, 5, 15 min): before {r['load_before']}, at the end {r['load_during']}; CPU time"
                 f" the host took from this machine during the load (steal): {r['steal']:.1%}")
    return "\n".join(lines)


def ratios(worker, bare):
    w, b = figures(worker), figures(bare)
    parts = []
    for what in ("quote", "order"):
        if what in w and what in b:
            parts.append(f"{what} p50 {w[what][0] / b[what][0]:.2f}x, p99 {w[what][1] / b[what][1]:.2f}x")
    wc = (worker["rss_connected"] - worker["rss_idle"]) / worker["clients"]
    bc = (bare["rss_connected"] - bare["rss_idle"]) / bare["clients"]
    parts.append(f"memory per client {wc:.1f} vs {bc:.1f} KB")
    parts.append(f"CPU per 1,000 calls {worker['cpu'] / worker['sent'] * 1000:.3f} vs"
                 f" {bare['cpu'] / bare['sent'] * 1000:.3f} s")
    line = f"  worker/bare at {worker['clients']} clients: " + "; ".join(parts)
    slowest = max((b[what][0] for what in ("quote", "order") if what in b), default=0)
    if slowest > PAST_CAPACITY_MS:
        line += (f"\n  (the bare server was itself past capacity: its p50 {slowest:.0f} ms, its calls queueing; the"
                 " ratios compare two queues: lower --rate, or run on a quieter machine)")
    if worker.get("busy", 0) > BUSY and worker["busy"] > bare.get("busy", 0):
        line += (f"\n  (the machine's CPUs were busy {worker['busy']:.0%} of the time under the worker's load against"
                 f" {bare['busy']:.0%} under the bare server's: past {BUSY:.0%} the worker's calls wait for a CPU, and"
                 " the master's work, which the bare server has none of, competes with it and with the load"
                 " generators for the same CPUs)")
    return line


def median_ratios(rounds):
    """The median over rounds of each p50/p99 ratio (the rounds' own figures are printed above it)."""
    parts = []
    for what in ("quote", "order"):
        pairs = [(figures(w), figures(b)) for w, b in rounds]
        if all(what in w and what in b for w, b in pairs):
            p50 = sorted(w[what][0] / b[what][0] for w, b in pairs)
            p99 = sorted(w[what][1] / b[what][1] for w, b in pairs)
            parts.append(f"{what} p50 {median(p50):.2f}x, p99 {median(p99):.2f}x (rounds: "
                         + ", ".join(f"{x:.2f}" for x in p99) + ")")
    steal = max(r["steal"] for pair in rounds for r in pair)
    return (f"  median over {len(rounds)} rounds at {rounds[0][0]['clients']} clients, worker/bare: "
            + "; ".join(parts) + f"; the host's steal at most {steal:.1%}")


def main(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # the servers are stopped on the way out
    nofile = raise_file_limit()
    needed = max(args.clients) * 2 + 100
    if nofile < needed:
        sys.exit(f"open files limit {nofile} is below the {needed} this run needs: raise it (ulimit -Hn)")
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptload-")
    servers = Servers(data_dir, args)
    try:
        print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()}; open files limit {nofile};"
              f" database {label}", flush=True)
        servers.start_cluster(database)
        servers.start_bare()
        ca = os.path.join(data_dir, tls.CA_CERT)
        tokens, prices, seconds = make_accounts(servers.worker_port, ca, max(args.clients))
        print(f"master pid {servers.master.pid}, worker pid {servers.worker.pid}, bare server pid"
              f" {servers.bare.pid} (garbage collector: {args.bare_gc}); {len(tokens)} accounts registered and logged in in {seconds:.1f} s", flush=True)
        print(f"load: {args.rate:g} calls/s offered in all from {args.generators} generator processes"
              f" ({args.orders:.0%} PlaceOrder, the rest Quote), {args.warmup:g} s warm-up then {args.seconds:g} s"
              f" measured; each client watches 1 symbol (a Tick every {args.interval:g} s) and its account's"
              f" order events", flush=True)
        for n, clients in enumerate(args.clients):
            rounds = []
            for k in range(args.rounds):
                def bare_load():
                    return run_load("bare", servers.bare.pid, servers.bare_port, ca, clients, tokens, prices, args,
                                    f"b{n}.{k}")

                def worker_load():
                    return run_load("worker", servers.worker.pid, servers.worker_port, ca, clients, tokens, prices,
                                    args, f"w{n}.{k}", extra_pids=[servers.master.pid])

                if args.rounds > 1:
                    print(f"round {k + 1} of {args.rounds} at {clients} clients", flush=True)
                # Taking turns (bare first, then worker first, ...) so a machine that slows down or speeds up
                # during the run does not favour one side.
                first, second = (bare_load, worker_load) if k % 2 == 0 else (worker_load, bare_load)
                a = first()
                print(report(a), flush=True)
                b = second()
                print(report(b), flush=True)
                bare, worker = (a, b) if first is bare_load else (b, a)
                print(ratios(worker, bare), flush=True)
                rounds.append((worker, bare))
            if len(rounds) > 1:
                print(median_ratios(rounds), flush=True)
        print(f"worker log entries kept in memory: log_memory_size {args.log_memory_size or 'default'};"
              f" load average at the end {loadavg()}", flush=True)
    finally:
        for proc in Generator.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        servers.stop()
        if args.keep:
            print(f"kept the data dir with the servers' logs (master.out, worker.out, logs/): {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(args.database, schema)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1000,3000", help="client counts, comma-separated (default 1000,3000)")
    parser.add_argument("--rate", type=float, default=4000, help="calls per second offered in all (default 4000)")
    parser.add_argument("--orders", type=float, default=0.1, help="share of the calls that place orders (0.1)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds measured per load (default 10)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="loads per server and client count, the servers taking turns; with more than one, the"
                             " median ratios are printed too (default 1)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before measuring (default 3)")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between market updates (default 5, as update_interval)")
    parser.add_argument("--log-memory-size", type=int, default=0, help="the servers' log_memory_size")
    parser.add_argument("--profile", default=None, help="write the worker's cProfile statistics to this file")
    parser.add_argument("--profile-master", default=None,
                        help="write the master's cProfile statistics (its reactor thread) to this file")
    parser.add_argument("--database", default=None, help="postgresql://... (a fresh schema, dropped at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir, with the servers' logs, at the end")
    parser.add_argument("--bare-gc", choices=("settled", "python"), default="settled",
                        help="the bare server's garbage collector: as our daemons set it (settled, the default),"
                             " or Python's defaults")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile = os.path.abspath(args.profile)
    if args.profile_master:
        args.profile_master = os.path.abspath(args.profile_master)
    try:
        args.clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        parser.error("--clients: numbers separated by commas")
    if args.rounds < 1:
        parser.error("--rounds: 1 or more")
    if min(args.clients) < args.generators or args.rate <= 0 or not 0 <= args.orders <= 1 or args.seconds <= 0:
        parser.error("each client count must be at least --generators; --rate and --seconds above 0;"
                     " --orders between 0 and 1")
    return args


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
