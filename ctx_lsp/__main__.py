"""Entry point: `ctx-lsp` / `python -m ctx_lsp` start the language server on stdio;
`ctx-lsp <command>` runs a command-line command instead (`ctx_lsp.cli`)."""

from __future__ import annotations

import argparse
import logging
import sys


def _serve_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="speak LSP on stdio (the default)")
    parser.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    parser.add_argument("--log-file", help="write logs to this file instead of stderr")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def setup_logging(verbose: int, log_file: str | None) -> None:
    from ctx_lsp.text.redact import RedactingFilter

    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler()
    )
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # pygls logs every message at DEBUG/INFO, text included: keep it quiet unless -vv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def serve(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.log_file)
    from ctx_lsp.server import build_server

    server = build_server()
    if args.tcp:
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`ctx-lsp` alone or `ctx-lsp serve [...]` serves LSP; `ctx-lsp <command>` runs a CLI
    command (see `ctx_lsp.cli`)."""
    from ctx_lsp.cli import main as cli_main

    return cli_main(
        sys.argv[1:] if argv is None else argv,
        serve_options=_serve_parser,
        serve=serve,
        setup_logging=setup_logging,
    )


if __name__ == "__main__":
    sys.exit(main())
