"""Writes intake's OpenAPI 3.1 document to services/intake/openapi.json (`make openapi`).

The running service serves the same document at /openapi.json and renders it at /docs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from services.intake import api

DOCUMENT = Path(__file__).with_name("openapi.json")


def document() -> dict[str, Any]:
    # Building the routes touches neither the intake service nor the verifier: they are only
    # called when a request arrives, so placeholders are enough to describe the API.
    app = api.create_app(cast(Any, None), cast(Any, None), {})
    return app.openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render())
    print(f"wrote {DOCUMENT}", file=sys.stderr)
