"""The client's side of signing in with an identity provider: a one-shot loopback listener.

As command-line tools of cloud providers do: listen on 127.0.0.1 on a free
port, have the browser open the provider's page, and take the code the
provider redirects back to ``http://127.0.0.1:PORT/callback``.
"""

import secrets

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

PAGE = (b"<!doctype html><title>PaperTrader</title><p>Signed in with your provider. "
        b"You can close this window and go back to the terminal.")


NOT_OURS = (b"<!doctype html><title>PaperTrader</title><p>This is not the sign-in the terminal started; it was"
            b" ignored.")


class Callback(resource.Resource):
    """Takes the first callback carrying the state of the sign-in this client started (``expect``): any other
    (another sign-in's code, sent by someone who can reach this port) is ignored, else it would be finished as
    ours (someone else's identity linked to this account, or this terminal signed in as them)."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.result = defer.Deferred()
        #: The state ProviderStart gave (None until then: nothing is taken).
        self.state = None

    def expect(self, state):
        self.state = state

    def render_GET(self, request):
        args = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        ours = self.state is not None and secrets.compare_digest(args.get("state", "").encode(), self.state.encode())
        if not ours or not ("code" in args or "error" in args):
            request.setResponseCode(400)
            return NOT_OURS
        if not self.result.called:
            self.result.callback(args)
        return PAGE


@defer.inlineCallbacks
def listen(reactor):
    """Fires with (redirect URI, the Callback: ``expect`` the state, then its ``result``, listening port)."""
    callback = Callback()
    root = resource.Resource()
    root.putChild(b"callback", callback)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server.Site(root))
    return f"http://127.0.0.1:{port.getHost().port}/callback", callback, port
