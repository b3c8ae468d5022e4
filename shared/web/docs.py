"""The interactive docs pages (Swagger UI at /docs, ReDoc at /redoc), served by both twins
from assets in this package, so they work with no internet (see shared/static/docs/README.md)."""

from shared.web.packaged import packaged_asset

ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-init.js": "text/javascript; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "redoc-init.js": "text/javascript; charset=utf-8",
}
ASSETS_PATH = "/docs/assets"

SWAGGER_UI_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>authtwin — Swagger UI</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>authtwin — ReDoc</title>
</head>
<body>
<div id="redoc"></div>
<script src="{ASSETS_PATH}/redoc.standalone.js"></script>
<script src="{ASSETS_PATH}/redoc-init.js"></script>
</body>
</html>
"""


def asset(name: str) -> tuple[bytes, str] | None:
    """A docs asset's bytes and media type; None for any name not in the fixed list."""
    return packaged_asset("docs", ASSET_TYPES, name)
