"""Keep-alive connections handed back now and then, so that uvicorn's workers share the clients.

`qa serve --workers N` runs N processes that accept from one shared socket. A client keeps its
connection, and with it its worker, for as long as it likes; when several clients connect at
once, one worker often accepts them all and answers them one after another while another
worker idles (measured: all four connections of four simultaneous clients on one of two
workers in 2 of 5 tries, and half the throughput; docs/performance.md). So every
`REQUESTS_PER_CONNECTION`-th response on a connection says `Connection: close`, as nginx's
`keepalive_requests` does: the client reconnects (every HTTP client does so by itself), and the
new connection goes to whichever worker is waiting in `accept` - the one that was idle, since a
busy worker answers on its event loop and does not accept meanwhile. So clients drift from a
busy worker to an idle one, and the more often they reconnect, the sooner: with 4 clients on
2 workers, 4-client throughput was 0.64x-0.85x of the floor in 9 runs handing back every 25
answers, and 0.75x-0.86x in 9 runs every 10, one of them under 0.8x (every 5: 0.81x-0.86x in
9, but the 16-client p95 rose by a quarter). One client alone pays for the reconnects:
0.85x-0.89x of the floor every 10 answers against 0.87x-0.98x every 25 (docs/performance.md).
"""

from __future__ import annotations

REQUESTS_PER_CONNECTION = 10  # measured against 5 and 25 (module text)
_TRACKED = 4096  # connections counted at most (one that went away stays until cleared)


class Rebalance:
    """ASGI middleware: adds `Connection: close` to every `every`-th HTTP response of a
    connection (a connection is known by its client address and port)."""

    def __init__(self, app, every: int = REQUESTS_PER_CONNECTION) -> None:
        self.app = app
        self.every = every
        self.served: dict[tuple, int] = {}

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client:  # (a unix socket has no client address)
            await self.app(scope, receive, send)
            return
        key = tuple(client)
        count = self.served.pop(key, 0) + 1
        if count < self.every:
            if len(self.served) >= _TRACKED:
                self.served.clear()
            self.served[key] = count
            await self.app(scope, receive, send)
            return

        async def closing(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
