#!/usr/bin/env bash
# The GPU self-check in two halves, for a GPU machine that is lent briefly, starts bare and has no
# network (Python 3.12 with its own torch + CUDA, numpy, pyarrow, matplotlib, tiktoken, pytest).
#
#   benchmarks/gpu_selfcheck.sh            here: put the wheels it lacks in build/gpu-wheels and
#                                          print the one command line to run there
#   benchmarks/gpu_selfcheck.sh --device   there (from the repository root): install and run it
#
# The wheels are the versions this checkout's environment runs (pip freeze), for CPython 3.12 on
# x86-64 Linux, installed with --no-deps so the device's own torch is the one used. They go into
# a --target folder on PYTHONPATH rather than site-packages: nothing needs root or a venv there.
# build/ is git-ignored, so the folder travels only when named (the device tool's `carry`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WHEELS="build/gpu-wheels"
MAX_MIB=64
# what `bugdrill selfcheck` imports beyond the device's packages (mcp and google-re2 for the rest
# of bugdrill; the server's other dependencies are not needed by the self-check)
PACKAGES="mcp libcst gitpython gitdb smmap platformdirs google-re2 pydantic pydantic-core annotated-types
typing-inspection typing-extensions pyyaml"

device_command() {
    # what runs there: everything under $OUT comes back
    echo 'set -e; T=/tmp/bugdrill-pkgs; python3 -m pip install -q --no-deps --no-index --target $T' \
         "$WHEELS"'/*.whl && cd / && { nvidia-smi -L || true; } && BUGDRILL_STATE_DIR=/tmp/bugdrill-state PYTHONPATH=$T' \
         'timeout 570 python3 -m server.cli selfcheck --device cuda --minutes 8.5 --json $OUT/selfcheck.json' \
         '2>$OUT/selfcheck.stderr.log | tee $OUT/selfcheck.txt; exit ${PIPESTATUS[0]}'
}

pinned() {
    local freeze
    freeze="$("$ROOT/.venv/bin/python" -m pip freeze 2>/dev/null)"
    for name in $PACKAGES; do
        local pattern="^${name//-/[-_]}=="
        grep -i "$pattern" <<<"$freeze" || { echo "gpu_selfcheck.sh: $name is not in $ROOT/.venv" >&2; exit 2; }
    done
}

prepare() {
    cd "$ROOT"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    # shellcheck disable=SC2046
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$WHEELS" $(pinned)
    .venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" .
    rm -rf build/lib build/bdist.* # setuptools' scratch, not a wheel
    local size
    size=$(du -sm "$WHEELS" | cut -f1)
    if [ "$size" -gt "$MAX_MIB" ]; then
        echo "gpu_selfcheck.sh: $WHEELS holds $size MiB, over the $MAX_MIB MiB that may travel" >&2
        exit 1
    fi
    echo "$(ls "$WHEELS" | wc -l) wheels, $size MiB in $ROOT/$WHEELS:" >&2
    ls "$WHEELS" >&2
    local command
    command="$(device_command)"
    echo "run on the GPU machine from the repository root, carrying $WHEELS (${#command} characters):" >&2
    echo "$command"
}

if [ "${1:-}" = "--device" ]; then
    cd "$ROOT" && OUT="${OUT:-$ROOT/build/selfcheck-out}" && mkdir -p "$OUT" && export OUT
    exec bash -c "$(device_command)"
fi
prepare
