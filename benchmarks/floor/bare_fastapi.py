"""The framework floor: a bare FastAPI app with one JSON endpoint returning the raw ASGI app's body.

No middleware, no database, no dependencies: the gap to `raw_asgi` is FastAPI's own routing and response cost.
Run: `uvicorn benchmarks.floor.bare_fastapi:app`
or `granian --interface asgi benchmarks.floor.bare_fastapi:app`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/")
async def status() -> JSONResponse:
    """Return `{"status":"ok"}`, the same bytes as `raw_asgi`."""
    return JSONResponse({"status": "ok"})
