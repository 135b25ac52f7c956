"""Compose a worker's HTTP listener: the REST API and the streams on one twisted.web Site."""

from twisted.python import usage

from papertrader.guard import Limits, guarded
from papertrader.services import ListeningService
from papertrader.worker.http import site as sites
from papertrader.worker.http.rest import RestApi
from papertrader.worker.http.streams import stream_resources
from papertrader.worker.web import web_resource


def http_service(worker, reactor, description, cert_path, settings):
    """The listener of ``--http DESCRIPTION`` (see papertrader/worker/http/site.py), not started."""
    try:
        endpoint = sites.endpoint(reactor, description, cert_path)
    except sites.HttpEndpointError as e:
        raise usage.UsageError(str(e))
    rest = RestApi(worker, settings.api_rate_limit)
    streams = stream_resources(worker, settings)
    web = web_resource(worker, settings)
    # Idle connections and unread output are the Site's (IDLE_TIMEOUT) and the streams' (MAX_BACKLOG) business.
    limits = Limits.from_settings(settings, idle=False, unsent=False)
    factory = guarded(sites.site(rest.resource(), streams, web), limits, worker.log, f"worker {worker.name} HTTP",
                      reactor, hide_tls=True, after_read=worker.link.between)
    return ListeningService(endpoint, factory, worker.log, f"worker {worker.name} HTTP")
