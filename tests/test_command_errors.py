"""Errors inside commands: the user's mistakes get a clear answer; a bug is an internal error,
logged with its traceback and told once, never passed off as "invalid params"."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from ctx_lsp import commands
from ctx_lsp.server import CtxServer
from ctx_lsp.server.action_handlers import guarded
from tests.conftest import command, open_doc
from tests.fake_openai import FakeOpenAI


async def test_settings_that_leave_no_room_for_the_prompt_get_a_clear_answer(
    lsp, repo: Path, fake_openai: FakeOpenAI
):
    client = await lsp(
        repo,
        env=fake_openai.env(),
        init_options={"model": "test-model", "contextTokens": 256, "maxTokens": 1000},
    )
    uri = open_doc(client, repo / "app.py")
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
    with pytest.raises(JsonRpcException, match="prompt budget too small") as err:
        await command(client, "ctx.explain", {"uri": uri, "range": rng})
    assert err.value.code == JsonRpcInvalidParams.CODE
    assert fake_openai.requests == []


class _Recording(CtxServer):
    """The real server, with the messages it shows recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__({})
        self.shown: list[str] = []

    def window_show_message(self, params: types.ShowMessageParams) -> None:
        self.shown.append(params.message)


async def test_argument_errors_are_invalid_params_and_a_bug_is_not():
    ls = _Recording()

    async def bad_argument() -> None:
        raise commands.ArgumentError("'uri' must be a non-empty string")

    async def bug() -> None:
        int("not a number")  # a ValueError no argument caused

    with pytest.raises(JsonRpcInvalidParams, match="'uri' must be"):
        await guarded(ls, bad_argument)
    with pytest.raises(ValueError, match="invalid literal"):  # pygls: an internal error
        await guarded(ls, bug)


def test_an_internal_error_is_logged_with_its_traceback_and_told_once(
    caplog: pytest.LogCaptureFixture,
):
    ls = _Recording()
    for _ in range(3):
        try:
            int("not a number")
        except ValueError as exc:
            with caplog.at_level(logging.ERROR, logger="ctx_lsp"):
                ls.report_server_error(exc, "ctx.explain")
    assert ls.shown == ["ctx-lsp: internal error: ValueError; see the log"]
    records = [r for r in caplog.records if r.getMessage().startswith("internal error (")]
    assert records and all(r.exc_info and r.exc_info[0] is ValueError for r in records)
