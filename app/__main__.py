"""Command line: ``python -m app [--domain module:NAME] serve | export-schema | db sync``.

The domain (a ``DomainConfig``) is ``--domain``, else ``LIVEGRAPH_DOMAIN``, else the
chat example (``app.resolvers.chat:CHAT``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from pathlib import Path

from app.domain import DomainConfig
from app.settings import Settings, SettingsError

DEFAULT_DOMAIN = "app.resolvers.chat:CHAT"


class DomainNotFound(ValueError):
    pass


def load_domain(spec: str) -> DomainConfig:
    """``module:NAME`` -> the ``DomainConfig`` named NAME in that module."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise DomainNotFound(f"--domain {spec!r}: expected module:NAME, e.g. {DEFAULT_DOMAIN}")
    try:
        domain = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise DomainNotFound(f"--domain {spec!r}: {exc}") from exc
    if not isinstance(domain, DomainConfig):
        raise DomainNotFound(f"--domain {spec!r} is a {type(domain).__name__}, not a DomainConfig")
    return domain


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.server import create_app
    from app.shutdown import GracefulServer
    from app.ws_protocol import uvicorn_ws

    settings = Settings.from_env()
    app = create_app(
        load_domain(args.domain),
        settings,
        demo=args.demo,
        public_url=f"http://{args.host}:{args.port}",
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws=uvicorn_ws(settings.ws_implementation),
        ws_per_message_deflate=settings.ws_permessage_deflate,
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=15,
    )
    GracefulServer(config, app).run()
    return 0


def _export_schema(args: argparse.Namespace) -> int:
    from app.application import Application

    text = Application.build(load_domain(args.domain)).schema.as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return 0


def _db_sync(args: argparse.Namespace) -> int:
    from app.application import Application
    from app.database import Database
    from app.database.sync import DestructiveChangeRefused, apply_sync, plan_sync
    from app.live import changelog

    metadata = Application.build(load_domain(args.domain)).metadata
    settings = Settings.from_env()

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            if args.dry_run:
                plan = await plan_sync(db.write_engine, metadata)
                print(plan.describe())
                return 1 if plan.refused(allow_destructive=args.allow_destructive) else 0
            try:
                plan = await apply_sync(
                    db.write_engine, metadata, allow_destructive=args.allow_destructive
                )
            except DestructiveChangeRefused as exc:
                print(exc, file=sys.stderr)
                return 1
            async with db.write_engine.begin() as conn:
                await changelog.ensure_clock(conn)
            print(plan.describe())
            return 0
        finally:
            await db.dispose()

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument(
        "--domain",
        default=os.environ.get("LIVEGRAPH_DOMAIN", DEFAULT_DOMAIN),
        help=f"the DomainConfig to serve, as module:NAME (default {DEFAULT_DOMAIN})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo data, print a token")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)
    export = commands.add_parser("export-schema", help="write the SDL")
    export.add_argument("--output", "-o", default="schema.graphql")
    export.set_defaults(handler=_export_schema)
    db = commands.add_parser("db", help="database commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    sync = db_commands.add_parser("sync", help="bring the database in line with the models")
    sync.add_argument("--dry-run", action="store_true", help="only print the plan")
    sync.add_argument("--allow-destructive", action="store_true", help="apply refused changes")
    sync.set_defaults(handler=_db_sync)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.handler(args))
    except (SettingsError, DomainNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
