"""Crash safety, long version: SIGKILL at random moments during history appends and session
saves, restart, verify that `.ctx/` loads and every acknowledged exchange survived. The short
version is tests/reliability/test_crash_safety.py.

    python bench/crash_safety.py [--light 1000] [--server 200] [--seed 1]

--light: kills of the light harness (the server's store code in a loop, ~0.3 s per kill);
--server: kills of the real `python -m ctx_lsp` driven over stdio (~3 s per kill).
Exits 1 on the first lost exchange or unloadable file.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.reliability._crash import (  # noqa: E402
    CrashCheckFailed,
    cache_integrity,
    light_kills,
    server_kills,
)
from tests.reliability._rpc import isolated_env  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Crash",
    "GIT_AUTHOR_EMAIL": "crash@example.invalid",
    "GIT_COMMITTER_NAME": "Crash",
    "GIT_COMMITTER_EMAIL": "crash@example.invalid",
}


def _user() -> str:
    from ctx_lsp.config.settings import Settings

    return Settings().effective_user()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--light", type=int, default=1000, help="kills of the light harness")
    parser.add_argument("--server", type=int, default=200, help="kills of the real server")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ctx-crash-"))
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = isolated_env(home)
    status = 0
    try:
        if args.light:
            root = tmp / "light"
            root.mkdir()
            t0 = time.monotonic()
            fig = light_kills(root, "bench", args.light, args.seed, env)
            print(f"{fig.line('store code')} in {time.monotonic() - t0:.0f} s")
        if args.server:
            root = tmp / "server"
            root.mkdir()
            (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
            for i in range(args.server):
                (root / f"pin{i}.py").write_text(f"PIN = {i}\n")
            git_env = {**env, **GIT_ENV}
            for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"]):
                subprocess.run(["git", *cmd], cwd=root, env=git_env, check=True)
            counter = itertools.count()
            with FakeOpenAI(reply=lambda body: f"answer-{next(counter)}") as fake:
                t0 = time.monotonic()
                fig = server_kills(root, _user(), args.server, args.seed, {**env, **fake.env()})
                print(
                    f"{fig.line('real server')} cache={cache_integrity(root)} "
                    f"in {time.monotonic() - t0:.0f} s"
                )
    except CrashCheckFailed as exc:
        print(f"FAIL: {exc}")
        status = 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
