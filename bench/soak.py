"""Soak: mixed editor traffic on 50 open documents for N minutes against the fake backend,
watching the server's resident memory (VmRSS). The 1-minute version is
tests/reliability/test_soak.py.

    python bench/soak.py --minutes 10 [--warmup 60] [--seed 1]

Prints RSS at start, after warm-up and at the end, their ratio, the peak, request counts,
errors and the slowest answer; exits 1 when memory grew more than --max-growth (default 10%)
after warm-up, or the server died.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.reliability._rpc import RawServer, isolated_env  # noqa: E402
from tests.reliability._soak import make_workspace, run_soak  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Soak",
    "GIT_AUTHOR_EMAIL": "soak@example.invalid",
    "GIT_COMMITTER_NAME": "Soak",
    "GIT_COMMITTER_EMAIL": "soak@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ctx-soak-"))
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = isolated_env(home)
    try:
        root = tmp / "ws"
        files = make_workspace(root, {**env, **GIT_ENV})
        counter = itertools.count()

        def reply(body: dict) -> str:
            n = next(counter)
            return f"result_{n % 97} = compute({n % 13})"

        seconds = args.minutes * 60
        with (
            FakeOpenAI(reply=reply) as fake,
            RawServer({**env, **fake.env()}, cwd=root, stderr=tmp / "server.log") as server,
        ):
            server.initialize(root, {"model": "test-model", "debounceMs": 0})
            print(f"soak: {len(files)} documents, {args.minutes:g} min, pid {server.pid}")
            result = run_soak(
                server,
                root,
                files,
                seconds,
                min(args.warmup, seconds / 2),
                seed=args.seed,
                progress=lambda s: print(f"  {s}", flush=True),
            )
            said = server.messages()
            server.close()
        history = sorted((root / ".ctx").rglob("history*.jsonl"))
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in history)
        print(result.line(f"{args.minutes:g} min"))
        print(f"messages shown: {said or 'none'}; history files: {sizes or 'none'}")
        samples = result.samples[:: max(1, len(result.samples) // 20)]
        print(
            "RSS samples (s: MiB): " + ", ".join(f"{t:.0f}: {kb / 1024:.1f}" for t, kb in samples)
        )
        ok = result.alive and result.ratio <= 1 + args.max_growth
        print(f"{'OK' if ok else 'FAIL'}: growth after warm-up {result.ratio - 1:+.1%}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("OPENAI_API_KEY", None)
    sys.exit(main())
