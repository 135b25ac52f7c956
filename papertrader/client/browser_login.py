"""The client's side of signing in with an identity provider: a one-shot loopback listener.

As command-line tools of cloud providers do: listen on 127.0.0.1 on a free
port, have the browser open the provider's page, and take the code the
provider redirects back to ``http://127.0.0.1:PORT/callback``.
"""

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

PAGE = (b"<!doctype html><title>PaperTrader</title><p>Signed in with your provider. "
        b"You can close this window and go back to the terminal.")


class Callback(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.result = defer.Deferred()

    def render_GET(self, request):
        args = {k.decode(): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if not self.result.called and "state" in args and ("code" in args or "error" in args):
            self.result.callback(args)
        return PAGE


@defer.inlineCallbacks
def listen(reactor):
    """Fires with (redirect URI, Deferred of the callback's arguments, listening port)."""
    callback = Callback()
    root = resource.Resource()
    root.putChild(b"callback", callback)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server.Site(root))
    return f"http://127.0.0.1:{port.getHost().port}/callback", callback.result, port
