// PaperTrader website: live updates, the order ticket, confirmations. Plain JavaScript, no build step.
// Every number arrives formatted by the server; this file only puts text where the server says.

const body = document.body;
const page = body.dataset.page;
const quiet = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

// --- the live connection -------------------------------------------------------------------------------

// Live prices paused (the footer's button, remembered in this browser): prices, values and charts stand still;
// the market clock, order events and the tables they change still come. Resuming reloads the page (its figures
// then are the newest).
let paused = localStorage.getItem("pt-paused") === "yes";
const pauser = document.getElementById("pause-live");
if (pauser) {
  pauser.closest(".pause-line").hidden = false;
  // (Its words say what it does; no aria-pressed beside them: "Resume live prices, pressed" said the opposite.)
  const show = () => { pauser.textContent = paused ? "Resume live prices" : "Pause live prices"; };
  show();
  pauser.addEventListener("click", () => {
    paused = !paused;
    localStorage.setItem("pt-paused", paused ? "yes" : "no");
    show();
    if (!paused) location.reload();
  });
}

function setText(key, text, sign) {
  // (paused: prices and values stand still; the market's clock and a game's status and players still move)
  if (paused && key !== "market" && key !== "clock" && !key.startsWith("game.")) return;
  for (const el of document.querySelectorAll(`[data-live="${CSS.escape(key)}"]`)) {
    if (el.textContent !== text) {
      el.textContent = text;
      // A short highlight of what changed (no layout is forced; reduced motion: none); in the dark top bar a
      // light one behind its light text made the market's clock unreadable for a moment at every update.
      const glow = el.closest("header.top") ? "rgba(255, 255, 255, .18)" : "#fff3c4";
      if (!quiet) el.animate([{ backgroundColor: glow }, { backgroundColor: "transparent" }], 1000);
    }
    if (sign) el.dataset.sign = sign; else delete el.dataset.sign;
  }
}

// Where a link or button leads is what it is: each order's Cancel posts to its own /orders/ID/cancel, each
// link has its own href. The focus follows it into the new rows by that, never by a label another row may share.
function focusKey(el) {
  const form = el.closest("form");
  return el.getAttribute("href") || (form && form.getAttribute("action"));
}

function replaceSection(name, html) {
  const section = document.querySelector(`[data-section="${CSS.escape(name)}"]`);
  if (!section) return;
  const active = document.activeElement;
  const key = active && section.contains(active) ? focusKey(active) : null;
  const tag = key && active.tagName;
  section.innerHTML = html;
  if (!key) return;
  const again = [...section.querySelectorAll(tag)].find((el) => focusKey(el) === key);
  if (again) { again.focus(); return; }
  // Its row is gone (the order filled or ended): the table's caption (said with the table's name), not the page's top.
  const table = section.closest("table");
  const landing = (table && table.querySelector("caption")) || section.closest("section") ||
    document.getElementById("main");
  landing.setAttribute("tabindex", "-1");
  landing.focus();
}

function toast(text, kind) {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = `toast ${kind || ""}`;
  const words = document.createElement("span");
  words.textContent = text;
  // It stays while the pointer or the keyboard is on it, and can be dismissed (it may cover what is below).
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => item.remove());
  item.append(words, close);
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  let timer = setTimeout(() => item.remove(), 8000);
  const hold = () => clearTimeout(timer);
  const release = () => { clearTimeout(timer); timer = setTimeout(() => item.remove(), 4000); };
  item.addEventListener("mouseenter", hold);
  item.addEventListener("focusin", hold);
  item.addEventListener("mouseleave", release);
  item.addEventListener("focusout", release);
}

function status(text) {
  document.getElementById("live-status").textContent = text || "";
}

// Set once this page is being left (a link, a form): what the live connection says then is moot.
let leaving = false;

// The session ended (signed out elsewhere, a password change, the operator): the sign-in page says so.
function signedOut() {
  if (leaving) return;
  body.dataset.liveState = "signed-out";
  const here = location.pathname + location.search;  // back here once signed in again
  location.assign("/signin?session=ended" + (here === "/" ? "" : `&next=${encodeURIComponent(here)}`));
}

let socket = null;
let retry = 0;
// The order ticket's preview, asked again (set below) when what it was computed from moves: the buying power, the
// symbol's price, the open orders and the position (a preview kept from before an update no longer added up).
let ticketMoved = null;

window.addEventListener("beforeunload", () => {
  leaving = true;
  if (socket) socket.close(1000);
});
window.addEventListener("pageshow", (event) => {
  // Back to this page from the browser's cache: live again.
  if (event.persisted) { leaving = false; connect(); }
});

function subscription() {
  const message = { page };
  if (body.dataset.symbol) message.symbol = body.dataset.symbol;
  if (body.dataset.game) message.game = body.dataset.game;
  // A game's page: the visitor's part it shows now (a Join form, their portfolio in it), sent again only if it
  // changes (a code being typed in the join form is kept).
  const mine = document.querySelector("[data-section='game-mine'] [data-mine]");
  if (mine) message.mine = mine.dataset.mine;
  if (body.dataset.interval) message.interval = body.dataset.interval;
  if (body.dataset.first) message.first = body.dataset.first === "yes";
  if (body.dataset.rangeBase) message.base = body.dataset.rangeBase;
  if (body.dataset.symbols) message.symbols = body.dataset.symbols.split(" ").filter(Boolean).slice(0, 200);
  return message;
}

function connect() {
  body.dataset.liveState = "connecting";
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/live`;
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify(subscription()));
  });
  socket.addEventListener("message", (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch { return; }
    switch (m.t) {
      case "ready":
        retry = 0;
        status("");
        body.dataset.liveState = "ready";
        break;
      case "set":
        for (const [key, [text, sign]] of Object.entries(m.v)) setText(key, text, sign);
        if (ticketMoved && !paused && ("buying_power" in m.v || `quote.${body.dataset.symbol}.price` in m.v)) {
          ticketMoved();
        }
        break;
      case "html":
        // (paused: the tables of orders still come, not the leaderboard's moving equities)
        for (const [name, html] of Object.entries(m.v)) if (!(paused && name === "leaderboard")) replaceSection(name, html);
        if (ticketMoved) ticketMoved();
        break;
      case "candle":
        if (!paused) document.dispatchEvent(new CustomEvent("pt:candle", { detail: m.c }));
        break;
      case "equity":
        if (!paused) document.dispatchEvent(new CustomEvent("pt:equity", { detail: m }));
        break;
      case "toast": {
        // The banner about an order placed here ("...: open.") says its news, not a state it has left; in sight
        // it says it alone (its words are announced: a toast beside it said, and was heard, twice).
        const banner = document.getElementById("flash");
        const ours = banner && m.order && banner.dataset.order === m.order;
        if (ours) {
          banner.textContent = `${m.text}.`;
          if (m.kind === "error") { // (a rejection: the banner that said "open" says it as an error, at once)
            banner.className = "flash error";
            banner.setAttribute("role", "alert");
          }
        }
        const box = ours && banner.getBoundingClientRect();
        if (!ours || box.bottom <= 0 || box.top >= window.innerHeight) toast(m.text, m.kind);
        break;
      }
      case "notice":
        status(m.text);
        break;
      case "signed_out":
        signedOut();
        break;
      case "reload":
        // The portfolio this page showed was closed elsewhere: made again, it shows the default one and says so.
        if (!leaving) location.reload();
        break;
    }
  });
  socket.addEventListener("close", (event) => {
    if (leaving) return;
    if (event.code === 4001) { signedOut(); return; }
    body.dataset.liveState = "closed";
    retry = Math.min(retry + 1, 6);
    const wait = Math.min(30, 2 ** (retry - 1));
    // Said once while it lasts (a screen reader would hear each retry's change of words).
    if (retry === 1) status("Live updates paused: reconnecting...");
    setTimeout(connect, wait * 1000);
  });
}

if (body.dataset.signedIn === "yes") connect();

// --- forms ---------------------------------------------------------------------------------------------

// What the last form did, in sight and said: why it was refused (beside the form), the message at the top, or a
// new API key's secret gets the focus (a message present when the page loads is not announced otherwise) and is
// scrolled into view (on a phone a refused order's reason is far down the page). The fields a refusal names are
// marked invalid, described by it.
const told = document.getElementById("form-error") || document.getElementById("new-key") ||
  document.getElementById("flash");
if (told) {
  for (const id of (told.dataset.fields || "").split(" ").filter(Boolean)) {
    const input = document.getElementById(id);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    input.setAttribute("aria-describedby", [told.id, ...described].join(" "));
  }
  told.focus({ preventScroll: true });
  told.scrollIntoView({ block: "center", behavior: "instant" });
}

// (On the document: a form a live update put in the page asks too.)
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !confirm(form.dataset.confirm)) event.preventDefault();
});

// --- the order ticket: only the fields the order type uses, and a preview of its cost -----------------

// A preview's answer shown in its box (the ticket's, the replace page's).
function showPreview(preview, p) {
  // The buying power the answer counted from, beside what it says is left: the three figures add up (the
  // live one may have moved since; paused, it does not move at all).
  const power = preview.querySelector('[data-live="buying_power"]');
  if (power && p.buying_power) power.textContent = p.buying_power;
  document.getElementById("preview-cost").textContent = p.cost;
  if (p.label) document.getElementById("preview-cost-label").textContent = p.label;
  document.getElementById("preview-after").textContent = p.after;
  document.getElementById("preview-note").textContent = p.note;
  preview.dataset.ok = p.ok ? "yes" : "no";
  // What a screen reader hears: the preview in one sentence, once it has changed.
  const label = document.getElementById("preview-cost-label").textContent;
  const said = `${label}: ${p.cost}. Buying power after: ${p.after}. ${p.note || ""}`.trim();
  const region = document.getElementById("preview-said");
  if (region.textContent !== said) region.textContent = said;
}

// The replace page: what the new order would keep of buying power, asked as it is typed and as the price moves.
const replacing = document.querySelector("form.replace-form");
if (replacing && document.getElementById("preview")) {
  const preview = document.getElementById("preview");
  let timer = null;
  let asked = 0;
  async function askReplace() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(replacing)) if (name !== "csrf") params.append(name, value);
    const mine = ++asked;
    try {
      const answer = await fetch(`${replacing.getAttribute("action")}/preview?${params}`,
        { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (answer.redirected || answer.status === 401) { signedOut(); return; }
      if (!answer.ok) return;
      const p = await answer.json();
      if (mine === asked) showPreview(preview, p);
    } catch {
      // offline for a moment: the next change asks again
    }
  }
  ticketMoved = () => { clearTimeout(timer); timer = setTimeout(askReplace, 250); };
  replacing.addEventListener("input", ticketMoved);
  replacing.addEventListener("change", ticketMoved);
  askReplace();
}

const ticket = document.querySelector(".ticket-form");
if (ticket) {
  const kind = ticket.querySelector("#t-type");
  const tif = ticket.querySelector("#t-time_in_force");
  const preview = document.getElementById("preview");
  const submit = document.getElementById("place-order");

  function chosen(name) {
    const el = ticket.querySelector(`input[name="${name}"]:checked`);
    return el ? el.value : "";
  }

  function layout() {
    const type = kind.value;
    const by = chosen("amount_by");
    for (const el of ticket.querySelectorAll("[data-show-for]")) {
      const wanted = el.dataset.showFor.split(" ");
      el.hidden = !(wanted.includes(type) || wanted.includes(by));
    }
    // Dollars only for market day orders; stops take day or gtc.
    const dollars = ticket.querySelector("#t-by-dollars");
    dollars.disabled = type !== "market";
    if (dollars.disabled && by === "dollars") ticket.querySelector("#t-by-shares").checked = true;
    // Exits (a take-profit, a stop-loss) for orders by shares of the types that take them; they take day or gtc.
    const exits = ticket.querySelector("[data-exits]");
    exits.hidden = chosen("amount_by") === "dollars" || !["market", "limit", "stop", "stop_limit"].includes(type);
    const withExits = !exits.hidden && [...exits.querySelectorAll("input")].some((input) => input.value.trim());
    const stopLike = ["stop", "stop_limit", "trailing_stop"].includes(type) || withExits;
    // A dollar amount is a Day order only: the others are shown disabled (as a stop's are), never silently undone.
    const inDollars = chosen("amount_by") === "dollars";
    for (const option of tif.options) {
      option.disabled = (stopLike && !["day", "gtc"].includes(option.value)) || (inDollars && option.value !== "day");
    }
    if (tif.selectedOptions[0].disabled) tif.value = "day";
    const side = chosen("side");
    submit.textContent = `Place ${side} order`;
  }

  let timer = null;
  let asked = 0;
  async function ask() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(ticket)) {
      if (name !== "csrf" && name !== "client_order_id") params.append(name, value);
    }
    const mine = ++asked;
    try {
      const answer = await fetch(`/asset/${encodeURIComponent(body.dataset.symbol)}/preview?${params}`,
        { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (answer.redirected || answer.status === 401) { signedOut(); return; }
      if (!answer.ok) return;
      const p = await answer.json();
      if (mine !== asked) return;
      showPreview(preview, p);
    } catch {
      // offline for a moment: the next change asks again
    }
  }

  function changed() {
    layout();
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  }

  // Asked again when the market or the portfolio moved, if anything is typed (an empty ticket says nothing).
  ticketMoved = () => {
    const typed = ["#t-qty", "#t-notional"].some((css) => ticket.querySelector(css)?.value.trim());
    if (!typed) return;
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  };

  ticket.addEventListener("input", changed);
  ticket.addEventListener("change", changed);
  layout();
  // Come to sell (or, filled in with a position's shares, to close it): the shares, to check or change.
  const query = new URLSearchParams(location.search);
  if (!told && (query.get("side") === "sell" || query.has("qty"))) ticket.querySelector("#t-qty")?.focus();
  ask();
}
