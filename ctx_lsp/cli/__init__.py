"""`ctx-lsp <command>`: the assistant from a shell, on the same core as the server.

This module only parses arguments and dispatches; each command group lives in its own module
(`ai`, `state`, `info`), imported when used so that starting the server stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctx_lsp import __version__

EPILOG = """\
commands work in the current workspace's .ctx/ folder: the workspace root is the nearest
ancestor of the current directory holding .ctx or .git, else the current directory; --root
overrides it. File arguments are relative to the current directory. Settings come from the
user config file and the workspace's .ctx/config.toml, as for the server.

exit codes:
  0    success
  1    the task failed: nothing to commit, nothing to summarize, no usable answer,
       a doctor check failed, the editor was aborted
  2    usage error: bad arguments, unknown template, a file that is missing, outside the
       workspace or excluded from the context, a bad line range, a bad merge source
  3    model backend error: no API key, unreachable, key rejected, unknown model, timeout
  4    damaged state or configuration: a damaged .ctx file was moved aside into
       .ctx/corrupt/ (the command still ran), `templates check` found problems, or a merge
       source is damaged
  130  interrupted

--json prints one JSON object on stdout; messages and errors always go to stderr.
`ctx-lsp` alone (or `ctx-lsp serve`) starts the language server on stdio.
"""

COMMANDS = ("serve", "chat", "commit", "explain", "prompt", "session", "history")
COMMANDS += ("templates", "tree", "doctor", "trust", "untrust", "demo")

Handler = Callable[[Any, argparse.Namespace], Any]


def _common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """Options every command takes; SUPPRESS keeps a value given before the command."""
    parser.add_argument(
        "--root", type=Path, default=argparse.SUPPRESS, help="the workspace root folder"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="log to stderr"
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object")


def _add(sub: Any, name: str, handler: str, help: str, **kw: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=kw.pop("description", help), **kw)
    p.set_defaults(handler=handler)
    return p


def build_parser(
    serve_options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ctx-lsp",
        description="A language server that gives any editor AI help that remembers,\n"
        "and the same assistant from the command line.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"ctx-lsp {__version__}")
    parser.add_argument("--root", type=Path, default=None, help="the workspace root folder")
    if serve_options is not None:
        serve_options(parser)
    else:
        parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = _add(sub, "serve", "serve", "start the language server (the default)")
    if serve_options is not None:
        serve_options(serve)

    p = _add(sub, "demo", "demo", "play a few LSP exchanges against the configured backend")
    p.add_argument("--model", help="model name (default: the configured one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch repository")

    p = _add(sub, "chat", "ai:chat", "ask a question with the workspace context and history")
    p.add_argument("question", nargs="?", help="the question (default: read from stdin)")
    p.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="add a file to the context (repeatable; the first is the current file)",
    )
    _common(p)

    p = _add(
        sub,
        "commit",
        "ai:commit",
        "write a commit message for the staged diff "
        "(the working-tree diff when nothing is staged); never commits",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--staged", dest="staged", action="store_const", const=True)
    which.add_argument("--working-tree", dest="staged", action="store_const", const=False)
    p.add_argument("--edit", action="store_true", help="edit the message in $EDITOR first")
    p.add_argument("--write", metavar="FILE", help="also write it to FILE (git commit -F FILE)")
    _common(p)

    p = _add(sub, "explain", "ai:explain", "explain a file or some of its lines")
    p.add_argument("target", metavar="FILE[:START-END]", help="lines are 1-based, inclusive")
    _common(p)

    p = _add(
        sub,
        "prompt",
        "ai:prompt",
        "dry run: print the messages a completion at "
        "FILE:LINE[:COL] would send (masked), without sending them",
    )
    p.add_argument("target", metavar="FILE:LINE[:COL]", help="1-based; COL defaults to the end")
    _common(p)

    _session(sub)
    _history(sub)
    _templates(sub)

    p = _add(
        sub,
        "tree",
        "info:tree",
        "the project's files as a tree with sizes "
        "(git-ignored files and files that never enter the context left out)",
    )
    p.add_argument("--depth", type=_positive, metavar="N", help="levels shown below the root")
    _common(p)

    p = _add(sub, "doctor", "info:doctor", "check settings, backend, model, git and .ctx/")
    _common(p)

    p = _add(
        sub,
        "trust",
        "trust:trust",
        "let this workspace's .ctx/ files (as they are now) choose the backend, key variable, "
        "model file, environment allowlist, user and templates",
    )
    _common(p)
    p = _add(sub, "untrust", "trust:untrust", "stop trusting this workspace's .ctx/ files")
    _common(p)
    return parser


def _session(sub: Any) -> None:
    group = _add(sub, "session", "", "show, save, clear or merge the session")
    ss = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(ss, "show", "state:session_show", "open and pinned files, branch, overrides")
    _common(p)
    p = _add(
        ss,
        "save",
        "state:session_save",
        "copy the session and history into DEST "
        "(default .ctx/backups/<time>/): a snapshot `session merge` takes back",
    )
    p.add_argument("dest", nargs="?", type=Path, metavar="DEST")
    _common(p)
    p = _add(ss, "clear", "state:session_clear", "forget open and pinned files and overrides")
    _common(p, json_flag=False)
    p = _add(
        ss,
        "merge",
        "state:session_merge",
        "merge another session and its history into this workspace's",
        description="""Merge OTHER's session and history into ours. OTHER is one of:
  - a session.json file (its history.jsonl beside it is merged too, if there);
  - a folder holding session.json and/or history.jsonl (e.g. from `session save`);
  - a .ctx folder, or a workspace folder holding one: the same user (and branch) as ours,
    else the only user there, else the one named by --user.
Open files: the union, the newer last-modified wins. Pinned files: the union. History:
interleaved by time, duplicates dropped. Settings overrides set on both sides to different
values: --prefer decides (ours by default) and each conflict is reported. Both inputs are
copied to .ctx/backups/<time>/ first; then history and session are replaced atomically.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("other", type=Path, metavar="OTHER")
    p.add_argument("--user", help="whose session to take from a .ctx folder with several")
    p.add_argument(
        "--prefer",
        choices=("ours", "theirs"),
        default="ours",
        help="which side's setting wins a conflict (default: ours)",
    )
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    _common(p)


def _history(sub: Any) -> None:
    group = _add(sub, "history", "", "show, clear, summarize or export the chat history")
    hs = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(hs, "show", "state:history_show", "the messages, oldest first")
    p.add_argument("--last", type=_positive, metavar="N", help="only the last N messages")
    _common(p)
    p = _add(hs, "clear", "state:history_clear", "delete the history (on disk too)")
    _common(p, json_flag=False)
    p = _add(
        hs,
        "summarize",
        "state:history_summarize",
        "condense older messages with the model; the summary replaces them in prompts",
    )
    _common(p)
    p = _add(hs, "export", "state:history_export", "write the history as JSON lines or Markdown")
    p.add_argument(
        "--format", choices=("jsonl", "md"), help="default: from -o's extension, else jsonl"
    )
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    _common(p, json_flag=False)


def _templates(sub: Any) -> None:
    group = _add(sub, "templates", "", "list, show or check the prompt templates")
    ts = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(ts, "list", "info:templates_list", "every template and where it comes from")
    _common(p)
    p = _add(ts, "show", "info:templates_show", "one template, in the template file format")
    p.add_argument("name")
    p.add_argument("--branch", help="the variant for this branch (default: the current one)")
    _common(p)
    p = _add(
        ts,
        "check",
        "info:templates_check",
        "unknown placeholders, empty templates, settings and template file problems",
    )
    _common(p)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def main(
    argv: Sequence[str],
    *,
    serve_options: Callable[[argparse.ArgumentParser], None] | None = None,
    serve: Callable[[argparse.Namespace], int] | None = None,
    setup_logging: Callable[[int, str | None], None] | None = None,
) -> int:
    parser = build_parser(serve_options)
    args = parser.parse_args(list(argv))
    if args.command in (None, "serve"):
        if serve is None:
            parser.error("the server cannot be started from here")
        return serve(args)
    if args.command == "demo":
        from ctx_lsp.cli.demo import main as demo

        return demo(
            [*(["--model", args.model] if args.model else []), *(["--keep"] if args.keep else [])]
        )
    if setup_logging is not None:
        setup_logging(getattr(args, "verbose", 0) or 0, None)
    from ctx_lsp.cli.run import run

    return run(args, dict(os.environ), Path.cwd(), sys.stdout, sys.stderr)
