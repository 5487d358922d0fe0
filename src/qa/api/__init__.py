"""`qa serve`: an HTTP JSON API over the same index as the CLI and the page (FastAPI on uvicorn).

    schema   the request and response models (one answer schema for `qa ask --json` and the API)
    guard    who may ask and how much: bearer token, binding policy, request body size
    app      the FastAPI application: routes, error handlers, picking up rebuilt indexes
    server   starting uvicorn (`qa serve`)

Needs the optional extra `qa[api]` (fastapi, uvicorn).
"""
