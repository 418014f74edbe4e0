"""Notifications leave nothing behind in the protocol: a server that lives for days sees
millions of didChange."""

from __future__ import annotations

import asyncio
from typing import Any

from ctx_lsp.server import build_server


class _Writer:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _message(server: Any, method: str, params: dict) -> Any:
    return server.protocol.structure_message({"jsonrpc": "2.0", "method": method, "params": params})


def test_text_sync_notifications_keep_no_futures(tmp_path) -> None:
    async def run() -> tuple[int, str]:
        server = build_server()
        server.protocol.set_writer(_Writer())
        uri = (tmp_path / "a.py").as_uri()
        doc = {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}
        server.protocol.handle_message(
            _message(server, "textDocument/didOpen", {"textDocument": doc})
        )
        for version in range(2, 502):
            change = {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": f"x = {version}\n"}],
            }
            server.protocol.handle_message(_message(server, "textDocument/didChange", change))
            await asyncio.sleep(0)
        server.protocol.handle_message(
            _message(server, "textDocument/didSave", {"textDocument": {"uri": uri}})
        )
        await asyncio.sleep(0.05)
        return len(server.protocol._request_futures), server.documents.get(uri).text

    pending, text = asyncio.run(run())
    assert text == "x = 501\n"  # every change was applied
    assert pending == 0
