"""GraphQL over HTTP conformance: every audit of the npm ``graphql-http`` package passes.

The audits (``serverAudits``) send real requests to a real server and judge the status,
content type and body of each answer against the GraphQL-over-HTTP spec: every MUST,
every SHOULD (for example: with ``Accept: application/graphql-response+json``, a document
that does not parse or validate, or variables that do not coerce, get 400 and no
``data``), and every MAY.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Server

pytestmark = pytest.mark.node
NODE_DIR = Path(__file__).parent / "node"
AUDIT_TIMEOUT_S = 60.0
# graphql-http 1.23 has 61 audits: 13 MUST, 23 SHOULD and 25 MAY.
AUDITS_AT_LEAST = 48


def node_ready() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are required for the graphql-http audit")
    if not (NODE_DIR / "node_modules" / "graphql-http").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )


async def run_audits(url: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "http_audit.mjs"),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), AUDIT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


async def test_every_graphql_over_http_audit_passes(sqlite_server: Server) -> None:
    await asyncio.to_thread(node_ready)
    results = await run_audits(sqlite_server.http)
    assert len(results) >= AUDITS_AT_LEAST, [r["name"] for r in results]
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, json.dumps(failed, indent=1)
