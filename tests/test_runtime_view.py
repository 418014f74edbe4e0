"""The documents a prompt may draw on: readable ones only, masked, and never a stale copy."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ctx_lsp.runtime import Runtime
from ctx_lsp.text.opendoc import OpenDoc
from ctx_lsp.text.redact import register_secret


def _runtime(tmp_path: Path) -> tuple[Runtime, object]:
    root = tmp_path / "ws"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    rt = Runtime({"HOME": str(tmp_path)})
    folder = rt.add_folder(root)
    rt.load()
    return rt, folder


def _doc(name: str, text: str) -> OpenDoc:
    return OpenDoc(f"file:///ws/{name}", name, "python", text, 1.0)


def test_a_repeated_view_follows_edits_exclusions_and_new_secrets(tmp_path: Path) -> None:
    rt, folder = _runtime(tmp_path)
    app = _doc("app.py", "TOKEN = 'abc'\nsession = 'Zq8vLr2mWx9pTt4k'\n")
    other = _doc("util.py", "def helper():\n    return 1\n")
    first = rt.view(folder, [app, other], [])
    assert [d.path for d in first.docs] == ["app.py", "util.py"]
    assert rt.view(folder, [app, other], []).docs == first.docs  # asked again: the same

    edited = _doc("util.py", "password = 'hunter2-but-longer'\n")
    texts = {d.path: d.text for d in rt.view(folder, [app, edited], []).docs}
    assert "hunter2-but-longer" not in texts["util.py"], "an edited document is masked again"

    register_secret("Zq8vLr2mWx9pTt4k")  # the key in use, say
    texts = {d.path: d.text for d in rt.view(folder, [app, edited], []).docs}
    assert "Zq8vLr2mWx9pTt4k" not in texts["app.py"], "a newly registered value is masked"

    secrets = _doc(".env", "API_KEY=x\n")
    paths = [d.path for d in rt.view(folder, [app, edited, secrets], []).docs]
    assert paths == ["app.py", "util.py"], "an excluded file never comes in"


def test_the_project_summary_follows_opened_closed_and_pinned_files(tmp_path: Path) -> None:
    from ctx_lsp.text.documents import Document

    rt, folder = _runtime(tmp_path)
    (folder.root / "notes.md").write_text("# notes\n")

    def summary(*names: str) -> str:
        documents = [(n, Document(f"file:///ws/{n}", "x = 1\n", "python", 1), False) for n in names]
        return rt.view(folder, [_doc(n, "x = 1\n") for n in names], documents).summary

    one = summary("app.py")
    assert "Open files: app.py (python)" in one
    assert summary("app.py") == one  # asked again: the same
    assert "Open files: app.py (python), util.py (python)" in summary("app.py", "util.py")
    assert "util.py" not in summary("app.py"), "a closed file leaves the summary"
    folder.pinned.append("notes.md")
    assert "Pinned files: notes.md" in summary("app.py")
