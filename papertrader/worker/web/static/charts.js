// Charts with TradingView's Lightweight Charts (vendor/, loaded before this module as the global
// LightweightCharts): the asset's candles with volume, and the account's equity. Data comes in the
// page (data-candles, data-points: decimal text) and then live from app.js (pt:candle, pt:equity).

const LC = window.LightweightCharts;

const base = {
  autoSize: true,
  layout: { background: { color: "#ffffff" }, textColor: "#2d3a48", attributionLogo: false,
            fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
  grid: { vertLines: { color: "#eef1f5" }, horzLines: { color: "#eef1f5" } },
  // entireTextOnly: a price mark at the top or bottom edge is shown whole or not at all (half of "$175.00" showed).
  rightPriceScale: { borderColor: "#d9dfe6", entireTextOnly: true },
  timeScale: { borderColor: "#d9dfe6" },
  localization: { locale: "en-US" },
};

// Times of day on an intraday axis and under the crosshair in the market's time zone (data-zone: the one the
// page's own times are in, 09:30 to 16:00 for New York).  Daily points (a day's candle, a daily equity curve's
// point) as their market days, by the rule of the page's tables (papertrader/times.py ``day``): a midnight UTC is
// its own date, any other moment (a session's open) its date in the market's zone.  The library counts days in
// UTC, and Sydney's session opens at 23:00 UTC the evening before: given its stamp, each day showed a day early.
// So a daily chart is given each point at its market day's midnight UTC (``time``), and says the days in UTC.
function zoned(box, intraday) {
  const zone = box.dataset.zone || "UTC";
  const part = (options, timeZone = zone) => new Intl.DateTimeFormat("en-US", { timeZone, ...options });
  const at = (time) => new Date(time * 1000);
  if (intraday) {
    const clock = part({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const date = part({ month: "short", day: "numeric" });
    const full = part({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
                        hourCycle: "h23", timeZoneName: "short" });
    return {
      time: (time) => time,
      tickMarkFormatter: (time, kind) => (kind >= 3 ? clock.format(at(time)) : kind === 2 ? date.format(at(time))
                                          : null),
      timeFormatter: (time) => full.format(at(time)),
    };
  }
  const local = part({ year: "numeric", month: "numeric", day: "numeric" });
  const year = part({ year: "numeric" }, "UTC");
  const month = part({ month: "short" }, "UTC");
  const date = part({ day: "numeric" }, "UTC");
  return {
    time: (time) => {
      if (time % 86400 === 0) return time; // a midnight UTC: its own day
      const p = Object.fromEntries(local.formatToParts(at(time)).map((x) => [x.type, x.value]));
      return Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day)) / 1000;
    },
    // Years, months and days as the library's own marks say them; under the crosshair the day as the table does.
    tickMarkFormatter: (time, kind) => (kind === 0 ? year.format(at(time)) : kind === 1 ? month.format(at(time))
                                        : kind === 2 ? date.format(at(time)) : null),
    timeFormatter: (time) => at(time).toISOString().slice(0, 10),
  };
}

function money(value) {
  return value.toLocaleString("en-US", { style: "currency", currency: "USD" });
}

const priceBox = document.getElementById("price-chart");
if (LC && priceBox) {
  const rows = JSON.parse(priceBox.dataset.candles || "[]");
  const intraday = priceBox.dataset.interval !== "1d";
  const zone = zoned(priceBox, intraday);
  const chart = LC.createChart(priceBox, {
    ...base,
    // fixLeftEdge: the first candle at the left edge, and the marks there moved in to be read whole (the library
    // keeps a mark inside the axis only at a fixed edge, or on a chart that cannot scroll: "Feb" showed as "eb").
    // rightOffsetPixels: room right of the newest candle, for the mark centred under it to be read whole (a new
    // year's, month's or day's first candle: "2010" showed as "201"); the edge cannot be fixed as the left one is
    // (fixRightEdge: a chart narrowed after loading then kept its oldest part in sight, not its newest).
    timeScale: { ...base.timeScale, timeVisible: intraday, secondsVisible: false, fixLeftEdge: true,
                 rightOffsetPixels: 30, tickMarkFormatter: zone.tickMarkFormatter },
    localization: { ...base.localization, priceFormatter: money, timeFormatter: zone.timeFormatter },
  });
  priceBox.chart = chart; // (for the browser tests, and a look from the console)
  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: "#0a7a3d", downColor: "#b42318", borderVisible: false, wickUpColor: "#0a7a3d",
    wickDownColor: "#b42318",
  });
  const volume = chart.addSeries(LC.HistogramSeries, {
    priceFormat: { type: "volume" }, priceScaleId: "volume", lastValueVisible: false, priceLineVisible: false,
  });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });

  const bar = (r) => ({ time: zone.time(r[0]), open: Number(r[1]), high: Number(r[2]), low: Number(r[3]),
                        close: Number(r[4]) });
  const vol = (r) => ({ time: zone.time(r[0]), value: Number(r[5]),
                        color: Number(r[4]) >= Number(r[1]) ? "rgba(10,122,61,.35)" : "rgba(180,35,24,.35)" });
  candles.setData(rows.map(bar));
  volume.setData(rows.map(vol));
  chart.timeScale().fitContent();
  // A box that changes width (a phone turned, a window widened) is fitted again, until the person scrolls or zooms
  // the chart (then where they took it stays theirs): the library keeps the candles' spacing, so a chart loaded
  // narrow and widened left most of its width empty, its candles bunched on the left.
  let moved = false;
  for (const kind of ["pointerdown", "wheel", "touchstart"]) {
    priceBox.addEventListener(kind, () => { moved = true; }, { passive: true });
  }
  let priceWidth = priceBox.clientWidth;
  new ResizeObserver(() => {
    if (priceBox.clientWidth === priceWidth) return;
    priceWidth = priceBox.clientWidth;
    if (!moved) requestAnimationFrame(() => chart.timeScale().fitContent());
  }).observe(priceBox);
  // The chart paints in the next frame: a mark for performance measurements (bench/bench_web.py).
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("pt:price-chart")));
  let last = rows.length ? rows[rows.length - 1][0] : 0;
  priceBox.dataset.candleCount = String(rows.length);
  priceBox.dataset.lastTime = String(last);

  document.addEventListener("pt:candle", (event) => {
    const r = event.detail;
    if (r[0] < last) return; // an older candle: the chart has a newer one
    if (r[0] > last) priceBox.dataset.candleCount = String(Number(priceBox.dataset.candleCount) + 1);
    last = r[0];
    candles.update(bar(r));
    volume.update(vol(r));
    priceBox.dataset.lastTime = String(last);
    priceBox.dataset.lastClose = r[4];
  });
}

const equityBox = document.getElementById("equity-chart");
if (LC && equityBox) {
  const points = JSON.parse(equityBox.dataset.points || "[]");
  const intraday = Number(equityBox.dataset.bucket || 86400) < 86400;
  const zone = zoned(equityBox, intraday);
  const chart = LC.createChart(equityBox, {
    ...base,
    timeScale: { ...base.timeScale, timeVisible: intraday, secondsVisible: false,
                 tickMarkFormatter: zone.tickMarkFormatter },
    localization: { ...base.localization, priceFormatter: money, timeFormatter: zone.timeFormatter },
    handleScroll: false,
    handleScale: false,
  });
  equityBox.chart = chart; // (as priceBox.chart)
  const line = chart.addSeries(LC.AreaSeries, {
    lineColor: "#1d4ed8", topColor: "rgba(29,78,216,.25)", bottomColor: "rgba(29,78,216,.02)", lineWidth: 2,
  });
  line.setData(points.map((p) => ({ time: zone.time(p[0]), value: Number(p[1]) })));
  chart.timeScale().fitContent();
  // The curve cannot be scrolled: when its box changes width (a phone turned, a window narrowed) it is fitted
  // again, after the library has followed the new size (it keeps the points' spacing: the first ones went out
  // of sight for good).
  let width = equityBox.clientWidth;
  new ResizeObserver(() => {
    if (equityBox.clientWidth === width) return;
    width = equityBox.clientWidth;
    requestAnimationFrame(() => chart.timeScale().fitContent());
  }).observe(equityBox);
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("pt:equity-chart")));
  const bucket = Number(equityBox.dataset.bucket || 86400);
  let last = points.length ? points[points.length - 1][0] : 0;
  equityBox.dataset.pointCount = String(points.length);

  // The live equity is the value of the newest bucket (or starts the next one).
  document.addEventListener("pt:equity", (event) => {
    const m = event.detail;
    if (m.time < last) return;
    let time = last;
    if (!last || m.time >= last + bucket) {
      time = last ? last + bucket * Math.floor((m.time - last) / bucket) : m.time;
      equityBox.dataset.pointCount = String(Number(equityBox.dataset.pointCount) + 1);
    }
    const grew = time !== last;
    last = time;
    line.update({ time: zone.time(time), value: Number(m.value) });
    // The whole curve stays in sight, from its first point (the one the note counts from): it cannot be scrolled,
    // and each new point pushed the oldest off the left edge (a daily replay's page left open lost a day every
    // update).
    if (grew) chart.timeScale().fitContent();
    equityBox.dataset.lastValue = m.value;
  });
}
