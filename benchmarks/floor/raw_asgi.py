"""The physical floor: a raw ASGI app that answers every HTTP request with one small JSON body.

No framework, no routing, no serialisation at request time: what is left is the server's own cost.
Run: `uvicorn benchmarks.floor.raw_asgi:app` or `granian --interface asgi benchmarks.floor.raw_asgi:app`.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer HTTP requests with `BODY`; accept lifespan events so servers start cleanly."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
