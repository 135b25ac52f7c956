"""The website client: trading in a browser, served by every worker on its HTTP listener.

``web_resource(worker, settings)`` is what papertrader/worker/http/service.py mounts for every path that
is not the REST API (``/v1/...``, ``/v2/...``) or a stream:

- ``/static/...``: the stylesheet, the page's JavaScript modules and the chart library (files of this
  package, held in memory, gzipped for browsers that take it);
- ``/live``: the page's WebSocket (live.py);
- everything else: the pages and forms (site.py), rendered on the worker from the answers of the same
  commands the command-line client sends, through the worker's gateway.

No build step: the files in ``static/`` are served as they are (``vendor/`` holds the chart library as
published on the npm registry, with its licence; see its README).
"""

import gzip
import hashlib
import importlib.resources

from twisted.web import resource

from papertrader.worker.web import security, views
from papertrader.worker.web.live import Live, LiveResource
from papertrader.worker.web.site import Website

TYPES = {".css": b"text/css; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".svg": b"image/svg+xml", ".txt": b"text/plain; charset=utf-8", ".md": b"text/plain; charset=utf-8",
         "LICENSE": b"text/plain; charset=utf-8", "NOTICE": b"text/plain; charset=utf-8"}


class StaticFiles(resource.Resource):
    """The files under ``static/``, read once; a path that is not one of them is 404 (no listings)."""

    isLeaf = True

    def __init__(self, root=None):
        """``root``: the folder of the files (default: this package's ``static/``)."""
        super().__init__()
        self.files = {}
        self._load(root or importlib.resources.files(__name__) / "static", "")
        # The version the pages' URLs of these files carry: any change of any file gives new URLs.
        views.STATIC_VERSION = hashlib.sha256(b"".join(
            name.encode() + etag for name, (_, _, _, etag) in sorted(self.files.items()))).hexdigest()[:12]

    def _load(self, folder, prefix):
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                self._load(entry, name + "/")
                continue
            kind = next((t for suffix, t in TYPES.items() if entry.name.endswith(suffix)), None)
            if kind is None:
                continue
            data = entry.read_bytes()
            self.files[name] = (data, gzip.compress(data, 9, mtime=0), kind,
                                b'"' + hashlib.sha256(data).hexdigest()[:16].encode() + b'"')

    def render_GET(self, request):
        security.headers(request, cache=True)
        found = self.files.get(b"/".join(request.postpath).decode("utf-8", "replace"))
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"not found\n"
        data, zipped, kind, etag = found
        request.setHeader(b"Content-Type", kind)
        request.setHeader(b"ETag", etag)
        request.setHeader(b"Vary", b"Accept-Encoding")
        if request.getHeader(b"if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        if b"gzip" in (request.getHeader(b"accept-encoding") or b""):
            request.setHeader(b"Content-Encoding", b"gzip")
            return zipped
        return data

    render_HEAD = render_GET


class WebRoot(resource.Resource):
    def __init__(self, website, live, static):
        super().__init__()
        self.website = website.resource()
        self.live = LiveResource(live)
        self.static = static

    def getChildWithDefault(self, name, request):
        if name == b"static":
            return self.static
        if name == b"live" and not request.postpath:
            return self.live
        request.postpath.insert(0, request.prepath.pop())
        return self.website


def web_resource(worker, settings):
    """The website of ``worker`` (see the module's docstring)."""
    website = Website(worker, settings)
    live = Live(worker, website)
    return WebRoot(website, live, StaticFiles())
