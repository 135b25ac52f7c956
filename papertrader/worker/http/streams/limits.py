"""The limits of the WebSocket streams (the README's "Streams" section lists them)."""

#: Seconds a connection has to authenticate (Alpaca's own limit); then error 404 and the connection closes.
AUTH_TIMEOUT = 10.0
#: Bytes of one client message, fragments reassembled (autobahn closes the connection with 1009 beyond).
MAX_MESSAGE = 64 * 1024
#: (channel, symbol) subscriptions one data-stream connection may hold ("*" counts as one); error 405 beyond.
MAX_SUBSCRIPTIONS = 1000
#: Authenticated connections one API key may hold on each stream path; error 406 beyond.
CONNECTIONS_PER_KEY = 5
#: Connections one client address may hold before authenticating; HTTP 429 on the upgrade beyond.
UNAUTHENTICATED_PER_ADDRESS = 50
#: Messages a client may send on one connection in any minute; error 429 and the connection closes beyond.
MESSAGES_PER_MINUTE = 600
#: Messages a client may send that are still waiting to be handled (an authentication waits for the master).
MAX_INBOX = 32
#: Error replies one connection may cause before it is closed (error 400, invalid syntax).
MAX_ERRORS = 50
#: Messages (and bytes) waiting for a client that does not read, once the socket's own buffers are full;
#: beyond either, the client is disconnected as slow (error 407).
MAX_BACKLOG = 1000
MAX_BACKLOG_BYTES = 1024 * 1024
#: Bytes of each connection's socket send buffer (the kernel doubles it); a fixed size, so that a client
#: that does not read holds little of the kernel's memory and is found out soon.
SEND_BUFFER = 128 * 1024
#: Data points in one data-stream frame (a bigger batch is sent as several frames).
MAX_BATCH = 200
#: The worker pings every connection this often, and drops one that has not answered within PING_TIMEOUT.
PING_INTERVAL = 30
PING_TIMEOUT = 30
#: Seconds between re-checks of every connection's API key with the master (a revocation the worker
#: missed while cut off from the master still ends the connection).
REVALIDATE_INTERVAL = 300.0
