"""The framework ceiling for `make bench`: one trivial synchronous endpoint.

Served by the same uvicorn command line as the API (same workers, no access
log), it measures what FastAPI + uvicorn alone cost per request on this
machine: routing, a threadpool hop for a plain `def`, JSON rendering, HTTP/1.1.

    uvicorn bench.trivial_app:app
"""

from fastapi import FastAPI

app = FastAPI(title="bench: trivial endpoint", openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}
