"""Our application as a plain ASGI object, for ASGI servers other than uvicorn.

`python -m app serve` runs uvicorn itself; granian and hypercorn import an app by
name instead: `ours_asgi:app` (with the repository on PYTHONPATH).
"""

import os

from app.__main__ import DEFAULT_DOMAIN, load_domain
from app.server import create_app

app = create_app(load_domain(os.environ.get("LIVEGRAPH_DOMAIN", DEFAULT_DOMAIN)))
