#!/usr/bin/env python
"""HTTP load for bench_http.py, run as its own process (its own interpreter and GIL, so the load does not share
the server's reactor thread): C keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, each sending its POSTs one
after another and reading each whole answer before the next.

Reads one JSON object on stdin: ``port``, ``path``, ``requests`` (in all), ``clients`` (a list, one per
connection, of {"headers": [{...}, ...]}: request n of a connection sends the headers n modulo their number),
``body`` (a JSON text with ``{client}`` and ``{n}`` in it, made unique per
request).  One warm-up request per connection is answered before the clock starts.  Prints one JSON object:
requests, seconds, statuses (count per HTTP status), latencies in ms (sorted), and the first answer's body.
Every read has a timeout: a server that stops answering ends the run with an error.
"""

import asyncio
import json
import sys
import time

TIMEOUT = 30.0


async def read_answer(reader):
    """(status, body) of one HTTP/1.1 answer (Content-Length or chunked)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), TIMEOUT)
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)).strip(), 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), TIMEOUT)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = b""
    return status, body


class Run:
    def __init__(self, spec):
        self.spec = spec
        self.count = len(spec["clients"])
        self.latencies, self.statuses, self.first = [], {}, {}
        self.warmed = 0
        self.all_warm, self.start = asyncio.Event(), asyncio.Event()

    async def client(self, index, share):
        spec = self.spec
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", spec["port"]), TIMEOUT)
        headers = ["".join(f"{k}: {v}\r\n" for k, v in h.items()) for h in spec["clients"][index]["headers"]]

        def request(n):
            body = spec["body"].replace("{client}", str(index)).replace("{n}", str(n)).encode()
            auth = headers[n % len(headers) if isinstance(n, int) else 0]
            return (f"POST {spec['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{auth}\r\n").encode() + body

        writer.write(request("warmup"))
        status, body = await read_answer(reader)
        self.first.setdefault("status", status)
        self.first.setdefault("body", body.decode("utf-8", "replace"))
        self.warmed += 1
        if self.warmed == self.count:
            self.all_warm.set()
        await self.start.wait()
        for n in range(share):
            began = time.perf_counter()
            writer.write(request(n))
            status, _ = await read_answer(reader)
            self.latencies.append(time.perf_counter() - began)
            self.statuses[status] = self.statuses.get(status, 0) + 1
        writer.close()

    async def main(self):
        spec, count = self.spec, self.count
        shares = [spec["requests"] // count + (1 if i < spec["requests"] % count else 0) for i in range(count)]
        tasks = asyncio.gather(*[self.client(i, shares[i]) for i in range(count)])
        warm = asyncio.ensure_future(self.all_warm.wait())
        done, _ = await asyncio.wait([tasks, warm], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if warm not in done:
            warm.cancel()
            await tasks  # a client failed (its error is raised here), or the warm-up timed out
            raise TimeoutError("the warm-up requests were not answered")
        began = time.perf_counter()
        self.start.set()
        await asyncio.wait_for(tasks, TIMEOUT + spec["requests"] / 10)
        seconds = time.perf_counter() - began
        return dict(requests=len(self.latencies), seconds=seconds, statuses=self.statuses,
                    latencies=sorted(x * 1000 for x in self.latencies), first=self.first)


if __name__ == "__main__":
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(Run(spec).main())))
