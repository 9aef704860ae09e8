#!/usr/bin/env bash
# Set up a virtual environment in .venv (torch 2.13.0 first: the CPU wheel) and run the demo.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test,eval]'
exec .venv/bin/bugdrill demo "$@"
