"""The bakeoff contract in Python: what every Python peer must do exactly as the Rust servers do.

This package is to the peers what `crates/core` is to the Rust variants: the parsing of every
parameter and its error message, the error bodies, the SQL text, the CPU workload, configuration
from the environment and the process self-measurement. A peer adds only its framework's routing
and how it reaches PostgreSQL. Each module names the core module it mirrors.
"""

import json
from pathlib import Path

#: The contract's OpenAPI document, served byte for byte as `GET /openapi.json`. The one place to
#: change when the document moves: core's generated document, written by `bakeoff openapi`.
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"

#: The document's bytes, read once per process.
OPENAPI_BYTES = OPENAPI_PATH.read_bytes()

#: The workspace version, as `/version` answers it. core writes it into the document's
#: `info.version` (a core test keeps the two equal), so the document is its one source here.
VERSION = json.loads(OPENAPI_BYTES)["info"]["version"]

#: The `Content-Type` of every response body, success or error (`core::JSON_CONTENT_TYPE`).
JSON_CONTENT_TYPE = "application/json"

#: The `Allow` header of every 405: each known path answers GET and HEAD only.
ALLOWED_METHODS = "GET, HEAD"
