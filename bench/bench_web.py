#!/usr/bin/env python
"""Website benchmarks: time to first render of the dashboard and of an asset page with a year of daily
candles, and the delay from a market update to the page showing it; each against a baseline of the
same run.

A ``Cluster`` (master + 1 worker, the replay of the shipped history from ``--start``, so the asset
page's daily chart has the year of history the replay stores before its first day; ``update_interval``
and ``heartbeat_interval`` 3600 s so nothing runs by itself; ``bcrypt_rounds`` 4) serves the website on
loopback.  An account is registered and signed in through the website's own forms (treq), buys
``--positions`` assets at the market (filled by one driven market update), and its session cookie is
given to a headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by Selenium, nothing
downloaded).

1. First render (``--repeat`` loads of each page, after one warm-up load): the browser's Navigation
   Timing and Paint Timing of each load — the first byte of the HTML (``responseStart``), the first
   contentful paint, the chart drawn (the ``performance.mark`` the page's chart script makes two
   animation frames after it set the data), ``DOMContentLoaded`` and ``load`` — with the browser's
   cache (the static files kept, as on a second visit) and, as ``cold``, after clearing it (CDP
   ``Network.clearBrowserCache``) before each load.  Also the time to GET the page's HTML with treq
   (the worker rendering it from the master's answers).
   Baseline: the very same HTML bytes (saved from the page, its live connection turned off) and the
   same static files, served by a bare twisted.web ``Site`` (``static.Data`` and ``static.File``) on
   another port, loaded the same way.
2. Update -> page (``--rounds``): with the page open and its live connection subscribed, a
   MutationObserver in the page records the wall-clock time (``performance.timeOrigin +
   performance.now()``) when the market time in its header changes (it comes in the same message as
   the new prices); the script records ``time.time()`` just before ``master.market.tick()`` (one
   replay day: the bars, the quote board, the candles, the push to the worker, the market step) and
   when the master pushes the quotes (``push_quotes``, wrapped).  The page's delay runs from each of
   those two moments to the DOM change.  Asset page and dashboard.
   Baseline: a bare autobahn WebSocket server on the baseline site pushes one small text message to a
   page that puts it in an element; the same observer, from just before the push.

Everything runs in one process and one reactor thread, except the browser (its own processes) and the
Selenium calls (a thread).  Nothing sleeps inside a measured loop; every wait has a timeout.

    .venv/bin/python bench/bench_web.py [--repeat 10] [--rounds 20] [--positions 5]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import treq  # noqa: E402
from autobahn.twisted.resource import WebSocketResource  # noqa: E402
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from twisted.internet import defer, task, threads  # noqa: E402
from twisted.web import resource, server, static  # noqa: E402

from bench.harness import wait_for_cluster  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from papertrader.config import Settings  # noqa: E402

CHROMIUM = os.environ.get("PAPERTRADER_BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PAPERTRADER_BENCH_CHROMEDRIVER", "/usr/bin/chromedriver")
STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "papertrader", "worker",
                          "web", "static")
WAIT = 30
PASSWORD = "benchmark password 1"

#: Navigation and paint timing of the load that just ended, in ms from the navigation's start.
TIMING = """
const nav = performance.getEntriesByType("navigation")[0];
const paint = performance.getEntriesByName("first-contentful-paint")[0];
const mark = performance.getEntriesByName(arguments[0])[0];
return {ttfb: nav.responseStart, fcp: paint ? paint.startTime : null, chart: mark ? mark.startTime : null,
        dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, bytes: nav.transferSize};
"""
#: Resolves when the chart's mark exists (the script is async: the chart may draw after 'load').
WAIT_MARK = """
const done = arguments[arguments.length - 1], name = arguments[0];
(function check() { performance.getEntriesByName(name).length ? done(true) : requestAnimationFrame(check); })();
"""
#: Records when the element first changes; resolves with that wall-clock time (ms since the epoch).
OBSERVE = """
const el = document.querySelector(arguments[0]);
window.__seen = null;
const observer = new MutationObserver(() => {
  if (window.__seen === null) window.__seen = performance.timeOrigin + performance.now();
  observer.disconnect();
});
observer.observe(el, {childList: true, characterData: true, subtree: true});
return true;
"""
#: Resolves once the page's live connection is subscribed (body[data-live-state=ready]).
LIVE_READY = """
const done = arguments[arguments.length - 1];
(function check() { document.body.dataset.liveState === "ready" ? done(true) : setTimeout(check, 5); })();
"""
SEEN = """
const done = arguments[arguments.length - 1];
(function check() { window.__seen !== null ? done(window.__seen) : setTimeout(check, 1); })();
"""
BASELINE_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>baseline</title></head>
<body data-live-state="off"><p>Last: <span id="price">-</span></p>
<script>
const ws = new WebSocket(`ws://${location.host}/push`);
ws.onopen = () => { document.body.dataset.liveState = "ready"; };
ws.onmessage = (event) => { document.getElementById("price").textContent = event.data; };
</script></body></html>"""


def chromium():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", "--window-size=1280,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


def in_thread(function, *args):
    return threads.deferToThread(function, *args).addTimeout(WAIT + 10, _reactor())


def _reactor():
    from twisted.internet import reactor

    return reactor


class Site:
    """The website through treq, as a browser without scripts: cookies by name."""

    def __init__(self, url):
        self.url = url
        self.cookies = {}

    def _keep(self, response):
        for raw in response.headers.getRawHeaders(b"set-cookie", []):
            name, _, rest = raw.decode("latin-1").partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def _headers(self):
        return {b"Cookie": ["; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()],
                b"Origin": [self.url.encode()]}

    async def get(self, path):
        response = await treq.get(self.url + path, headers=self._headers(), allow_redirects=False)
        self._keep(response)
        return response, await response.content()

    async def post(self, path, fields):
        response = await treq.post(self.url + path, data=fields, headers=self._headers(), allow_redirects=False)
        self._keep(response)
        await response.content()
        if response.code not in (200, 303):
            raise RuntimeError(f"POST {path}: HTTP {response.code}")
        return response

    @staticmethod
    def csrf(body):
        import re

        return re.search(rb'name="csrf" value="([0-9a-f]{64})"', body).group(1).decode()


class Push(WebSocketServerProtocol):
    def onOpen(self):
        self.factory.clients.add(self)

    def onClose(self, wasClean, code, reason):
        self.factory.clients.discard(self)


def baseline_site(pages):
    """A bare twisted.web site: the saved pages, the same static files, and a WebSocket that pushes."""
    root = resource.Resource()
    for path, body in pages.items():
        root.putChild(path.encode(), static.Data(body, "text/html; charset=utf-8"))
    root.putChild(b"static", static.File(STATIC_DIR))
    root.putChild(b"baseline", static.Data(BASELINE_PAGE, "text/html; charset=utf-8"))
    factory = WebSocketServerFactory()
    factory.protocol = Push
    factory.clients = set()
    root.putChild(b"push", WebSocketResource(factory))
    return server.Site(root), factory


def ms(values):
    values = [v for v in values if v is not None]
    if not values:
        return "     n/a"
    return f"{statistics.median(values):8.1f}"


def timing_line(name, loads):
    keys = ("ttfb", "fcp", "chart", "dcl", "load")
    return f"{name:44s}" + "".join(f" {ms([t[k] for t in loads])}" for k in keys) + \
        f"   (median of {len(loads)}, ms)"


async def loads(driver, url, mark, repeat, cold):
    """``repeat`` loads of ``url`` (one warm-up first): their timings."""
    out = []
    for i in range(repeat + 1):
        if cold:
            await in_thread(driver.execute_cdp_cmd, "Network.clearBrowserCache", {})
        await in_thread(driver.get, url)
        await in_thread(driver.execute_async_script, WAIT_MARK, mark)
        timing = await in_thread(driver.execute_script, TIMING, mark)
        if i:
            out.append(timing)
    return out


async def html_gets(site, path, repeat):
    out = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        response, body = await site.get(path)
        if response.code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.code}")
        out.append((time.perf_counter() - start) * 1000)
    return out[1:], body


async def update_delays(driver, url, rounds, tick):
    """``rounds`` updates with the page at ``url`` open: (from tick start, from the push) delays in ms."""
    await in_thread(driver.get, url)
    await in_thread(driver.execute_async_script, LIVE_READY)
    from_tick, from_push, from_worker = [], [], []
    for _ in range(rounds):
        await in_thread(driver.execute_script, OBSERVE, "[data-live='clock']")
        started, pushed, received = await tick()
        seen = await in_thread(driver.execute_async_script, SEEN) / 1000
        from_tick.append((seen - started) * 1000)
        from_push.append((seen - pushed) * 1000)
        from_worker.append((seen - received) * 1000)
    return from_tick, from_push, from_worker


def delay_line(name, values):
    values = sorted(values)
    return (f"{name:44s} p50 {statistics.median(values):7.1f}  min {values[0]:7.1f}  max {values[-1]:7.1f}"
            f"   ({len(values)} updates, ms)")


async def main(reactor, args):
    data_dir = tempfile.mkdtemp(prefix="bench-web-")
    settings = replace(Settings(), workers=1, bcrypt_rounds=4, update_interval=3600, heartbeat_interval=3600,
                       provider="replay", replay_start=args.start, fill_model="ideal")
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    cluster = Cluster(data_dir, settings, reactor, master_port=0, worker_port=0, http_port=0)
    driver = None
    baseline_port = None
    total = time.perf_counter()
    try:
        cluster.startService()
        await cluster.whenReady()
        master, worker = cluster.master, cluster.workers[0]
        # Assets listed after the replay's first day have no quote yet: wait for those that have one.
        await wait_for_cluster(reactor, cluster, [q.symbol for q in master.board.all()])
        pushed = []
        original_push = master.push_quotes

        def push_quotes(step, quotes):
            pushed.append(time.time())
            return original_push(step, quotes)

        master.push_quotes = push_quotes
        master.market.listeners[master.market.listeners.index(original_push)] = push_quotes

        received = []
        original_publish = worker.fanout.publish

        def publish(items):
            received.append(time.time())
            return original_publish(items)

        worker.fanout.publish = publish

        async def tick():
            started = time.time()
            del received[:]
            await master.market.tick()
            return started, pushed[-1], received[0] if received else None

        url = f"http://127.0.0.1:{worker.http.port.getHost().port}"
        site = Site(url)
        _, body = await site.get("/signin")
        csrf = site.csrf(body)
        await site.post("/register", dict(username="bench", email="bench@example.com", password=PASSWORD, csrf=csrf))
        await site.post("/signin", dict(username="bench", password=PASSWORD, csrf=csrf))
        _, body = await site.get("/")
        csrf = site.csrf(body)
        symbols = sorted(q["symbol"] for q in worker.quotes.all())
        for symbol in symbols[:args.positions]:
            await site.post(f"/asset/{symbol}/order", dict(side="buy", type="market", amount_by="shares", qty="10",
                                                           time_in_force="day", csrf=csrf))
        await tick()  # the buys fill
        symbol = "AAPL" if "AAPL" in symbols else symbols[0]
        asset_path = f"/asset/{symbol}?interval=1d"
        _, asset_body = await site.get(asset_path)
        candles = asset_body.count(b"],[") + 1
        print(f"cluster: replay from {args.start}, {len(symbols)} assets, {args.positions} positions;"
              f" {symbol}'s daily chart has {candles} candles", flush=True)

        gets_dashboard, dashboard_html = await html_gets(site, "/", args.repeat)
        gets_asset, asset_html = await html_gets(site, asset_path, args.repeat)
        pages = {"dashboard": dashboard_html.replace(b'data-signed-in="yes"', b'data-signed-in="no"'),
                 "asset": asset_html.replace(b'data-signed-in="yes"', b'data-signed-in="no"')}
        baseline, pushers = baseline_site(pages)
        baseline_port = reactor.listenTCP(0, baseline, interface="127.0.0.1")
        base_url = f"http://127.0.0.1:{baseline_port.getHost().port}"
        base_site = Site(base_url)
        base_gets_dashboard, _ = await html_gets(base_site, "/dashboard", args.repeat)
        base_gets_asset, _ = await html_gets(base_site, "/asset", args.repeat)
        print(f"pages: dashboard {len(dashboard_html):,} bytes of HTML, asset page {len(asset_html):,} bytes",
              flush=True)
        print(f"{'GET the HTML (treq), worker':44s} dashboard {ms(gets_dashboard)}  asset {ms(gets_asset)}"
              "   (median, ms)")
        print(f"{'GET the HTML (treq), baseline static':44s} dashboard {ms(base_gets_dashboard)}  asset"
              f" {ms(base_gets_asset)}   (median, ms)", flush=True)

        driver = await in_thread(chromium)
        await in_thread(driver.get, url + "/static/favicon.svg")
        await in_thread(driver.add_cookie, {"name": "__Host-pt_session", "value": site.cookies["__Host-pt_session"],
                                            "path": "/", "secure": True, "httpOnly": True, "sameSite": "Strict"})
        print(f"\n{'first render':44s} {'TTFB':>8s} {'FCP':>8s} {'chart':>8s} {'DCL':>8s} {'load':>8s}")
        results = {}
        for label, path, base_path, mark in (("dashboard", "/", "/dashboard", "pt:equity-chart"),
                                             (f"asset page ({candles} daily candles)", asset_path, "/asset",
                                              "pt:price-chart")):
            for cold in (False, True):
                kind = "cold" if cold else "cached"
                page = await loads(driver, url + path, mark, args.repeat, cold)
                base = await loads(driver, base_url + base_path, mark, args.repeat, cold)
                print(timing_line(f"{label}, {kind}", page))
                print(timing_line(f"  baseline static, {kind}", base), flush=True)
                results[(label, kind)] = (page, base)
        for (label, kind), (page, base) in results.items():
            ratio = statistics.median([t["chart"] for t in page]) / statistics.median([t["chart"] for t in base])
            print(f"ratio chart drawn, website/baseline: {label}, {kind}: {ratio:.2f}x")

        print()
        asset_tick, asset_push, asset_worker = await update_delays(driver, url + asset_path, args.rounds, tick)
        dash_tick, dash_push, dash_worker = await update_delays(driver, url + "/", args.rounds, tick)
        print(delay_line("update -> asset page, from the tick's start", asset_tick))
        print(delay_line("update -> asset page, from the master's push", asset_push))
        print(delay_line("update -> asset page, from the worker's receipt", asset_worker))
        print(delay_line("update -> dashboard, from the tick's start", dash_tick))
        print(delay_line("update -> dashboard, from the master's push", dash_push))
        print(delay_line("update -> dashboard, from the worker's receipt", dash_worker))
        await in_thread(driver.get, base_url + "/baseline")
        await in_thread(driver.execute_async_script, LIVE_READY)
        base_delays = []
        for i in range(args.rounds):
            await in_thread(driver.execute_script, OBSERVE, "#price")
            started = time.time()
            for client in list(pushers.clients):
                client.sendMessage(json.dumps({"price": f"{100 + i}.25"}).encode())
            seen = await in_thread(driver.execute_async_script, SEEN) / 1000
            base_delays.append((seen - started) * 1000)
        print(delay_line("baseline: bare WebSocket push -> page", base_delays))
        base = statistics.median(base_delays)
        print(f"ratio push -> page, website/baseline: asset {statistics.median(asset_push) / base:.2f}x,"
              f" dashboard {statistics.median(dash_push) / base:.2f}x", flush=True)
        print(f"\nmarket updates driven: {len(pushed)}", flush=True)
    finally:
        if driver is not None:
            await in_thread(driver.quit)
        if baseline_port is not None:
            await baseline_port.stopListening()
        if cluster.running:
            await cluster.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"total run time {time.perf_counter() - total:.1f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="measured loads of each page, each way (default 10)")
    parser.add_argument("--rounds", type=int, default=20, help="measured market updates per page (default 20)")
    parser.add_argument("--positions", type=int, default=5, help="assets the account holds (default 5)")
    parser.add_argument("--start", default="2011-01-03", help="the replay's first day: the history before it"
                                                              " is stored as candles (default 2011-01-03)")
    args = parser.parse_args(argv)
    for name in ("repeat", "rounds", "positions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
