"""The web page at ``/`` (static files, no build step, no CDN), its sample inputs under ``/examples``,
and ``/docs`` / ``/redoc`` with Swagger UI's and ReDoc's assets from the installed
``fastapi-standalone-docs`` package, so all of it works without internet."""

from __future__ import annotations

from pathlib import Path

import fastapi_standalone_docs
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"
DOC_ASSETS = Path(fastapi_standalone_docs.__path__[0]) / "static"
REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def install_pages(app: FastAPI, examples_dir: Path | None) -> None:
    """Mount the page, its assets, the examples (when there are any) and the offline docs on ``app``
    (created with ``docs_url=None, redoc_url=None``)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/doc-assets", StaticFiles(directory=DOC_ASSETS), name="doc-assets")
    examples = examples_dir or REPO_EXAMPLES
    if examples.is_dir():
        app.mount("/examples", StaticFiles(directory=examples), name="examples")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def assets(request: Request) -> tuple[str, str]:
        """The schema's URL and the docs assets' prefix, under the request's root path."""
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}/doc-assets"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        schema, a = assets(request)
        return get_swagger_ui_html(
            openapi_url=schema, title=f"{app.title} - Swagger UI", swagger_js_url=f"{a}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{a}/swagger/swagger-ui.css", swagger_favicon_url=f"{a}/fastapi/favicon.png",
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        schema, a = assets(request)
        return get_redoc_html(
            openapi_url=schema, title=f"{app.title} - ReDoc", redoc_js_url=f"{a}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{a}/fastapi/favicon.png", with_google_fonts=False,
        )  # fmt: skip
