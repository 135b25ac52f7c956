"""``papertrader``: the command-line client.

    papertrader [--master HOST:PORT] [--ca-file PATH] [--worker NAME] [--json] COMMAND ...

It asks the master for its workers (the only thing it asks the master), then
sends the command to a worker.  Failures print one line on stderr (and, with
--json, an object with ``error`` and ``message`` on stdout) and exit 1; usage
errors exit 2.  Never a traceback.
"""

import argparse
import getpass
import os
import sys
import uuid
import webbrowser

from twisted.internet import defer, task
from twisted.internet.ssl import Certificate

from papertrader import commands, tls
from papertrader.client import browser_login, output, tokens
from papertrader.client.connection import BadCAFile, Connection
from papertrader.errors import InvalidInput, NotLoggedIn, PaperTraderError, ProviderLoginFailed

ORDER_KEYS = ["id", "client_order_id", "side", "symbol", "quantity", "notional", "type", "time_in_force", "limit_price",
              "stop_price", "trail_price", "trail_percent", "status", "filled_quantity", "average_price", "reason"]
OPEN = ("new", "partially_filled")


class UsageFailure(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageFailure(message)


def build_parser():
    p = Parser(prog="papertrader", description="Trade on a PaperTrader deployment.")
    p.add_argument("--master", default=None,
                   help="the master's HOST:PORT (default: $PAPERTRADER_MASTER, else localhost:2048)")
    p.add_argument("--ca-file", default=None, help="the deployment's CA certificate (default: $PAPERTRADER_CA)")
    p.add_argument("--worker", default=None, help="use this worker (default: the last one used, else the least"
                                                   " loaded)")
    p.add_argument("--region", default=None, help="prefer workers in this region")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def password_options(parser):
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    c = sub.add_parser("register", help="create an account")
    c.add_argument("username")
    c.add_argument("email")
    password_options(c)
    c = sub.add_parser("login", help="log in and keep the session")
    c.add_argument("username", nargs="?", help="your username (with --provider: the one for a new account)")
    c.add_argument("--remember", action="store_true", help="stay logged in for 30 days instead of 24 hours")
    c.add_argument("--provider", metavar="NAME", help="sign in with an identity provider (e.g. google)")
    c.add_argument("--link", action="store_true",
                   help="with --provider: link the provider to your existing account (needs its password)")
    c.add_argument("--no-browser", action="store_true", help="with --provider: print the URL, do not open it")
    password_options(c)
    c = sub.add_parser("set-password", help="add a password to an account made through a provider")
    password_options(c)
    c = sub.add_parser("profile", help="your profile, or another user's public profile")
    c.add_argument("username", nargs="?")
    visibility = c.add_mutually_exclusive_group()
    visibility.add_argument("--public", action="store_true", help="let other users see your positions")
    visibility.add_argument("--private", action="store_true", help="hide your positions from other users")
    c = sub.add_parser("delete-account", help="delete your account's personal data (asks for proof)")
    password_options(c)
    c.add_argument("--provider", metavar="NAME", help="prove it is you by signing in with this provider")
    c.add_argument("--no-browser", action="store_true", help="with --provider: print the URL, do not open it")
    c.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    c = sub.add_parser("logout", help="end this session (or others: --all, --session ID)")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="end every session of the account, on every device")
    which.add_argument("--session", metavar="ID", help="end the session with this id (see 'sessions')")
    sub.add_parser("sessions", help="your sessions: id, created, last used, worker, address, expiry")
    c = sub.add_parser("passwd", help="change your password (ends your other sessions)")
    c.add_argument("--password-stdin", action="store_true",
                   help="read the current and the new password from stdin, one line each")
    sub.add_parser("whoami", help="show the account")
    sub.add_parser("workers", help="list available workers")
    sub.add_parser("assets", help="list assets and their prices")
    c = sub.add_parser("quote", help="the latest price of an asset")
    c.add_argument("symbol")
    c = sub.add_parser("candles", help="price history of an asset, one candle per update interval")
    c.add_argument("symbol")
    c.add_argument("--limit", type=int, default=20)
    for side in ("buy", "sell"):
        c = sub.add_parser(side, help=f"{side} at the market price of the next update")
        c.add_argument("symbol")
        c.add_argument("quantity")
        c.add_argument("--wait", action="store_true", help="wait until the order is filled or rejected")
        c.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits (default 120)")
        c.add_argument("--client-order-id", default=None,
                       help="your id for this order; sending it again never makes a second order")
    c = sub.add_parser("watch", help="print each new price of these assets until interrupted")
    c.add_argument("symbols", nargs="+", metavar="SYMBOL")
    c.add_argument("--count", type=int, default=None, help="stop after this many prices")
    c = sub.add_parser("orders", help="your recent orders")
    c.add_argument("--limit", type=int, default=50)
    sub.add_parser("portfolio", help="cash, positions and their value")
    c = sub.add_parser("history", help="your transaction history")
    c.add_argument("--limit", type=int, default=50)
    return p


class CLI:
    def __init__(self, reactor, args, environ, stdin, stdout, stderr):
        self.reactor = reactor
        self.args = args
        self.environ = environ
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.connection = None

    def out(self, text):
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def emit(self, data, text):
        self.out(output.to_json(data) if self.args.json else text)

    def token(self):
        session = tokens.load(self.environ)
        if session is None:
            raise NotLoggedIn("not logged in: run 'papertrader login USERNAME'")
        return session["token"]

    def password(self, confirm=False):
        if self.args.password_stdin:
            line = self.stdin.readline()
            return line.rstrip("\r\n")
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != first:
            raise InvalidInput("the passwords do not match")
        return first

    def connect(self):
        master = self.args.master or self.environ.get("PAPERTRADER_MASTER") or "localhost:2048"
        try:
            master = tls.parse_hostport(master, 2048)
        except ValueError as e:
            raise UsageFailure(f"--master: {e}")
        ca_file = self.args.ca_file or self.environ.get("PAPERTRADER_CA")
        if not ca_file:
            raise UsageFailure("no CA file: pass --ca-file PATH or set PAPERTRADER_CA (the deployment's ca.pem)")
        try:
            with open(ca_file, "rb") as f:
                ca_pem = f.read()
            Certificate.loadPEM(ca_pem)
        except OSError as e:
            raise BadCAFile(f"cannot read CA file {ca_file}: {e.strerror}")
        except Exception:
            raise BadCAFile(f"{ca_file} is not a PEM certificate (use the deployment's ca.pem)")
        self.connection = Connection(self.reactor, master, ca_pem, self.args.worker, self.args.region,
                                     tokens.remembered_worker(self.environ))

    @defer.inlineCallbacks
    def call(self, command, **kwargs):
        answer = yield self.connection.call(command, **kwargs)
        self.remember()
        return answer

    def remember(self):
        worker = self.connection.worker
        if worker is not None and worker["name"] != self.connection.remembered:
            tokens.remember_worker(worker["name"], self.environ)
            self.connection.remembered = worker["name"]

    # --- commands -----------------------------------------------------------

    @defer.inlineCallbacks
    def do_register(self):
        password = self.password(confirm=True)
        account = yield self.call(commands.Register, username=self.args.username, email=self.args.email,
                                  password=password)
        self.emit(account, f"Account {account['username']} created with {output.plain(account)['cash']} cash."
                           f" Log in with: papertrader login {account['username']}")

    @defer.inlineCallbacks
    def do_login(self):
        if self.args.provider:
            answer = yield self._provider_login()
            return self._logged_in(answer)
        if not self.args.username:
            raise UsageFailure("login needs a USERNAME (or --provider NAME)")
        password = self.password()
        answer = yield self.call(commands.Login, username=self.args.username, password=password,
                                 remember=self.args.remember)
        self._logged_in(answer)

    def _logged_in(self, answer):
        tokens.save({"token": answer["token"], "username": answer["username"],
                     "expires": answer["expires"].isoformat()}, self.environ)
        result = {"username": answer["username"], "expires": answer["expires"]}
        self.emit(result, f"Logged in as {answer['username']} until {output.plain(result)['expires']}.")

    #: How the sign-in page is opened (a person's browser; tests put their own in).
    browser = staticmethod(webbrowser.open)

    @defer.inlineCallbacks
    def _provider_sign_in(self):
        """Run the browser part of a provider sign-in; fires with the provider's answer (state, code)."""
        redirect_uri, called_back, port = yield browser_login.listen(self.reactor)
        try:
            start = yield self.call(commands.ProviderStart, provider=self.args.provider, redirect_uri=redirect_uri)
            self.stderr.write(f"Sign in with {self.args.provider} in your browser:\n  {start['url']}\n")
            if not self.args.no_browser:
                self.browser(start["url"])
            called_back.addTimeout(300, self.reactor)
            try:
                back = yield called_back
            except defer.TimeoutError:
                raise ProviderLoginFailed("no answer from the browser within 5 minutes")
        finally:
            yield port.stopListening()
        if "error" in back:
            raise ProviderLoginFailed(f"the provider said: {back['error'][:200]}")
        return back

    @defer.inlineCallbacks
    def _provider_login(self):
        back = yield self._provider_sign_in()
        answer = yield self.call(commands.ProviderFinish, provider=self.args.provider, state=back["state"],
                                 code=back["code"], remember=self.args.remember)
        if answer.get("token"):
            return answer
        if self.args.link:
            username = self.args.username or input("Your existing username: ")
            password = self.password()
            return (yield self.call(commands.ProviderLink, ticket=answer["ticket"], username=username,
                                    password=password))
        username = self.args.username
        if not username:
            if not self.stdin.isatty():
                raise UsageFailure(f"no account is linked to this sign-in yet: choose a username with"
                                   f" 'login --provider {self.args.provider} USERNAME' (suggested:"
                                   f" {answer['proposal']}), or add --link to use your existing account")
            username = input(f"New account's username [{answer['proposal']}]: ").strip() or answer["proposal"]
        return (yield self.call(commands.ProviderCreate, ticket=answer["ticket"], username=username))

    @defer.inlineCallbacks
    def do_profile(self):
        token = self.token()
        if self.args.public or self.args.private:
            yield self.call(commands.SetProfile, token=token, public_portfolio=self.args.public)
        arguments = {"username": self.args.username} if self.args.username else {}
        profile = yield self.call(commands.Profile, token=token, **arguments)
        profile = {k: v for k, v in profile.items() if v is not None}  # another user's: the public part
        text = output.fields(dict(profile, sign_in=", ".join(profile.get("sign_in") or []) or None),
                             ["username", "joined", "email", "cash", "sign_in", "public_portfolio"])
        if profile.get("positions"):
            text += "\n\n" + output.table(profile["positions"], ["symbol", "quantity"])
        self.emit(profile, text)

    @defer.inlineCallbacks
    def do_delete_account(self):
        token = self.token()
        if not self.args.yes:
            if not self.stdin.isatty():
                raise UsageFailure("delete-account needs --yes when not run in a terminal")
            me = tokens.load(self.environ) or {}
            if input(f"Type your username ({me.get('username')}) to delete your account: ") != me.get("username"):
                raise InvalidInput("not confirmed; nothing was deleted")
        proof = {}
        if self.args.provider:
            back = yield self._provider_sign_in()
            proof = dict(provider=self.args.provider, state=back["state"], code=back["code"])
        else:
            proof = dict(password=self.password())
        yield self.call(commands.DeleteAccount, token=token, **proof)
        tokens.clear(self.environ)
        self.emit({"deleted": True}, "Your account's personal data is deleted and you are logged out.")

    @defer.inlineCallbacks
    def do_set_password(self):
        token = self.token()
        password = self.password(confirm=True)
        yield self.call(commands.SetPassword, token=token, password=password)
        self.emit({"password_set": True}, "Password set: you can now log in with it as well.")

    @defer.inlineCallbacks
    def do_logout(self):
        token = self.token()
        if self.args.session:
            yield self.call(commands.EndSession, token=token, session_id=self.args.session)
            self.emit({"ended": self.args.session}, f"Session {self.args.session} ended.")
            return
        ended = 1
        try:
            if self.args.all:
                ended = (yield self.call(commands.LogoutAll, token=token))["sessions_ended"]
            else:
                yield self.call(commands.Logout, token=token)
        except NotLoggedIn:
            pass  # already ended on the master: forgetting it locally is all that is left
        tokens.clear(self.environ)
        self.emit({"logged_out": True, "sessions_ended": ended},
                  f"Logged out ({ended} sessions ended)." if self.args.all else "Logged out.")

    @defer.inlineCallbacks
    def do_sessions(self):
        answer = yield self.call(commands.Sessions, token=self.token())
        rows = answer["sessions"]
        self.emit(rows, output.table([dict(r, current="*" if r["current"] else "") for r in rows],
                                     ["id", "current", "created", "last_used", "worker", "client_ip", "expires"]))

    @defer.inlineCallbacks
    def do_passwd(self):
        token = self.token()
        if self.args.password_stdin:
            old = self.stdin.readline().rstrip("\r\n")
            new = self.stdin.readline().rstrip("\r\n")
        else:
            old = getpass.getpass("Current password: ")
            new = getpass.getpass("New password: ")
            if getpass.getpass("Repeat new password: ") != new:
                raise InvalidInput("the new passwords do not match")
        answer = yield self.call(commands.ChangePassword, token=token, old_password=old, new_password=new)
        self.emit({"changed": True, "sessions_ended": answer["sessions_ended"]},
                  f"Password changed; {answer['sessions_ended']} other session(s) ended.")

    @defer.inlineCallbacks
    def do_whoami(self):
        answer = yield self.call(commands.Whoami, token=self.token())
        answer["worker"] = self.connection.worker["name"]
        self.emit(answer, output.fields(answer, ["username", "email", "cash", "expires", "worker"]))

    @defer.inlineCallbacks
    def do_workers(self):
        workers = yield self.connection.workers()
        self.emit(workers, output.table(workers, ["name", "region", "host", "port", "load"])
                  if workers else "No worker available.")

    @defer.inlineCallbacks
    def do_assets(self):
        answer = yield self.call(commands.Assets)
        quotes = answer["quotes"]
        self.emit(quotes, output.table(quotes, ["symbol", "price", "time"]) if quotes else "No prices yet.")

    @defer.inlineCallbacks
    def do_quote(self):
        quote = yield self.call(commands.Quote, symbol=self.args.symbol)
        self.emit(quote, output.table([quote], ["symbol", "price", "time"]))

    @defer.inlineCallbacks
    def do_candles(self):
        answer = yield self.call(commands.Candles, symbol=self.args.symbol, limit=self.args.limit)
        candles = answer["candles"]
        self.emit(candles, output.table(candles, ["time", "open", "high", "low", "close", "volume"])
                  if candles else "No candles yet.")

    @defer.inlineCallbacks
    def _order(self, side):
        token = self.token()
        client_order_id = self.args.client_order_id or uuid.uuid4().hex
        order = yield self.call(commands.PlaceOrder, token=token, client_order_id=client_order_id, side=side,
                                symbol=self.args.symbol, quantity=self.args.quantity)
        if self.args.wait:
            deadline = self.reactor.seconds() + self.args.timeout
            while order["status"] in OPEN and self.reactor.seconds() < deadline:
                yield task.deferLater(self.reactor, 0.25, lambda: None)
                order = yield self.call(commands.GetOrder, token=token, order_id=order["id"])
        self.emit(order, output.fields(order, ORDER_KEYS))
        if order["status"] in ("rejected", "canceled", "expired"):
            return order.get("reason_code", "rejected"), order.get("reason", "rejected")
        if self.args.wait and order["status"] in OPEN:
            return "timeout", f"order {order['id']} is still open after {self.args.timeout:g} seconds"

    def do_buy(self):
        return self._order("buy")

    def do_sell(self):
        return self._order("sell")

    @defer.inlineCallbacks
    def do_watch(self):
        """Live prices; on a notice or a lost worker, go on through another worker."""
        seen = 0
        done = defer.Deferred()

        def tick(quote):
            nonlocal seen
            if done.called:
                return
            seen += 1
            text = f"{quote['symbol']:<8} {output.plain(quote)['price']:>12}  {output.plain(quote)['time']}"
            self.emit(quote, text)
            if self.args.count is not None and seen >= self.args.count:
                done.callback(None)

        while not done.called:
            yield self.connection.call(commands.Watch, symbols=self.args.symbols)
            proto = self.connection.proto
            proto.on_tick = tick
            self.remember()
            if not self.args.json:
                self.stderr.write(f"watching via worker {self.connection.worker['name']}; Ctrl-C to stop\n")
            which = yield defer.DeferredList([done, proto.ended], fireOnOneCallback=True)
            if done.called:
                break
            code, message = which[0]
            self.stderr.write(f"papertrader: {message}; moving to another worker\n")
            self.connection.avoid.add(self.connection.worker["name"])
            self.connection.close()

    @defer.inlineCallbacks
    def do_orders(self):
        answer = yield self.call(commands.Orders, token=self.token(), limit=self.args.limit)
        orders = answer["orders"]
        self.emit(orders, output.table(orders, ["id", "side", "symbol", "quantity", "type", "status",
                                                "filled_quantity", "average_price", "reason"])
                  if orders else "No orders yet.")

    @defer.inlineCallbacks
    def do_portfolio(self):
        p = yield self.call(commands.Portfolio, token=self.token())
        data = {"cash": p["cash"], "equity": p["equity"],
                "positions": [dict(pos, price=pos.get("price")) for pos in p["positions"]]}
        text = output.fields(data, ["cash", "equity"])
        if p["positions"]:
            text += "\n\n" + output.table(data["positions"],
                                          ["symbol", "quantity", "average_price", "price", "market_value"])
        self.emit(data, text)

    @defer.inlineCallbacks
    def do_history(self):
        answer = yield self.call(commands.History, token=self.token(), limit=self.args.limit)
        rows = answer["transactions"]
        self.emit(rows, output.table(rows, ["time", "side", "symbol", "quantity", "price", "amount", "cash_after"])
                  if rows else "No transactions yet.")

    @defer.inlineCallbacks
    def run(self):
        """Run the command; fires with the exit status."""
        failure = None
        try:
            self.connect()
            failure = yield getattr(self, "do_" + self.args.command.replace("-", "_"))()
        except UsageFailure as e:
            return self.fail("usage", str(e), 2)
        except PaperTraderError as e:
            failure = (e.code, e.message)
        except Exception as e:  # last resort: one line, never a traceback
            failure = ("error", f"{type(e).__name__}: {e}")
        finally:
            if self.connection is not None:
                self.connection.close()
        if failure:
            return self.fail(*failure)
        return 0

    def fail(self, code, message, status=1):
        self.stderr.write(f"papertrader: {message}\n")
        if self.args is not None and self.args.json:
            self.out(output.to_json({"error": code, "message": message}))
        return status


def run(reactor, argv, environ=None, stdin=None, stdout=None, stderr=None):
    """Parse ``argv`` and run it; a Deferred firing with the exit status."""
    environ = os.environ if environ is None else environ
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except UsageFailure as e:
        stderr.write(f"papertrader: {e}\n")
        if "--json" in argv:
            stdout.write(output.to_json({"error": "usage", "message": str(e)}) + "\n")
        return defer.succeed(2)
    return CLI(reactor, args, environ, stdin or sys.stdin, stdout, stderr).run()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            return e.code
    status = []

    def go(reactor):
        return run(reactor, argv).addCallback(status.append)

    try:
        task.react(go)
    except SystemExit:
        pass
    return status[0] if status else 1


if __name__ == "__main__":
    sys.exit(main())
