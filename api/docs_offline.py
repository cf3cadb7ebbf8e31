"""Swagger UI (``/docs``) and ReDoc (``/redoc``) served by the API itself, for air-gapped plant networks.

The JavaScript and CSS come from the ``fastapi-offline`` package (pinned in pyproject), mounted at
:data:`STATIC_URL`; nothing is loaded from a CDN. Both pages also carry a Content-Security-Policy that
allows only the API's own origin (plus inline bootstrap script/style, ``data:`` images and ``blob:``
workers, which Swagger UI and ReDoc need), so a third-party URL inside a bundle (ReDoc's attribution
logo from ``cdn.redoc.ly``) is never requested either.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: where the bundled assets are served
STATIC_URL = "/static-offline-docs"
#: the docs pages' Content-Security-Policy: the API's own origin only
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def install_offline_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add ``docs_url`` (Swagger UI), its OAuth2 redirect, ``redoc_url`` (ReDoc) and the asset mount to
    ``app`` (created with ``docs_url=None, redoc_url=None``). Answers are ``text/html`` with :data:`DOCS_CSP`."""
    app.mount(STATIC_URL, StaticFiles(directory=_ASSETS), name="static-offline-docs")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url, swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css", swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True})
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(openapi_url=f"{root}{openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
