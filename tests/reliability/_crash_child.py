"""The light crash harness: the server's own store code (History.append, SessionStore.save)
in a loop, in a process that the test kills with SIGKILL at a random moment.

    python -m tests.reliability._crash_child ROOT USER FIRST SEED

Prints `READY` after loading, `H <n>` once exchange n (user "q<n>" + assistant "a<n>", one
append) is durable, `S <n>` once the session holding marker n is durable. A line is printed
only after the call returned, so whatever was printed must survive the kill.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ctx_lsp.store.ctxdir import CtxStore
from ctx_lsp.store.history import History
from ctx_lsp.store.session import SessionStore
from ctx_lsp.text.messages import ChatMessage


def main(argv: list[str]) -> int:
    root, user, first, seed = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    rnd = random.Random(seed)
    store = CtxStore(root, ("users", user))
    history = History(store)
    history.load()  # as the server does at startup
    sessions = SessionStore(store)
    session = sessions.load()
    for problem in store.take_problems():
        print(f"P {problem}", file=sys.stderr, flush=True)
    print("READY", flush=True)
    n = first
    while True:
        n += 1
        if rnd.random() < 0.7:
            # records of varied length, so a torn tail can end anywhere in a line
            size = rnd.randrange(0, 512)
            history.append(
                ChatMessage("user", f"q{n}", kind="explain"),
                ChatMessage("assistant", f"a{n}" + "x" * size, kind="explain"),
            )
            print(f"H {n}", flush=True)
        else:
            session.pinned = [f"pin{n}.py"]
            session.settings_overrides = {"marker": n}
            sessions.save(session)
            print(f"S {n}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
