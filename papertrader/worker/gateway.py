"""The worker's gateway to the master, shared by its AMP and HTTP fronts.

``forward(command, arguments, client_ip)`` passes a client command on to the master as its
stamped twin (receive time, the client's address, this worker's name), after the worker's own
abuse limits and its session cache; ``session(token, client_ip)`` tells who a token (a session
token or an API key's credential) belongs to, from the cache or from the master.
"""

from twisted.internet import defer

from papertrader import commands
from papertrader.commands import stamped
from papertrader.errors import BadCredentials, NotLoggedIn, PaperTraderError, ServerError, UsernameTaken
from papertrader.times import utc


class Gateway:
    def __init__(self, worker):
        self.worker = worker

    def stamp(self, client_ip):
        return dict(received=utc(self.worker.clock.seconds()), client_ip=client_ip, worker=self.worker.name)

    @defer.inlineCallbacks
    def session(self, token, client_ip, use=True):
        """The username a token belongs to, from the cache or (on a miss) from the master; ``use`` false: asked
        for a page left open, not by the person (the master does not count it as the session's use)."""
        cached = self.worker.sessions.get(token)
        if cached is not None:
            return cached.username
        mark = self.worker.sessions.forgets
        try:
            answer = yield self.worker.link.call(commands.Authenticate, token=token, **({} if use else {"use": False}),
                                                 **self.stamp(client_ip))
        except NotLoggedIn:
            self.worker.sessions.forget(self.worker.sessions.key(token))
            raise
        if self.worker.sessions.ended_since(token, mark):
            # The master said it ended while its answer was on the way: the end is the newer news.
            raise NotLoggedIn("your session ended; log in again")
        self.worker.sessions.put(token, answer["username"], answer["expires"])
        return answer["username"]

    @defer.inlineCallbacks
    def forward(self, command, arguments, client_ip):
        """Pass a client command on to the master with this worker's stamp; fires with its answer."""
        worker = self.worker
        stamp = self.stamp(client_ip)
        worker.commands += 1
        address = ("address", client_ip)
        try:
            if command is commands.Login:
                worker.login_throttle.check(address)
            elif command is commands.Register:
                # Counted once the master has answered, and only if the request was valid (below).
                worker.register_throttle.refuse(address)
            if "token" in arguments:
                yield self.session(arguments["token"], client_ip)
            answer = yield worker.link.call(stamped(command), **arguments, **stamp)
        except BadCredentials:
            if command is commands.Login:
                worker.login_throttle.failed(address)
            raise
        except UsernameTaken:
            worker.register_throttle.count(address)  # a valid request: it cost the master a hash
            raise
        except NotLoggedIn:
            if "token" in arguments:
                worker.sessions.forget(worker.sessions.key(arguments["token"]))
            raise
        except PaperTraderError:
            raise
        except Exception:
            worker.log.failure("passing {command} on failed", command=command.__name__)
            raise ServerError()
        if command is commands.Register:
            worker.register_throttle.count(address)
        elif command is commands.Login:
            worker.login_throttle.refund(address)  # a right password is no guess (as at the master)
        if command in (commands.Logout, commands.LogoutAll):
            worker.sessions.forget(worker.sessions.key(arguments["token"]))
        return answer
