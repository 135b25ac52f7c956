"""The worker's HTTP front: an Alpaca-compatible REST API and WebSocket streams, beside its AMP port.

- :mod:`.site` — the listener (``--http``), the root resource that routes to the REST API and
  the streams, limits and security headers;
- :mod:`.rest` — the REST API (klein): authenticates each request's API key, passes it on to
  the master through the worker's gateway (stamped like every AMP command, answered by the same
  application layer), and answers in Alpaca's JSON;
- :mod:`.alpaca` — Alpaca's JSON shapes of our values (orders, positions, account, ...);
- :mod:`.streams` — the WebSocket streams (trade updates; live market data).
"""
