"""Loads bugdrill's telemetry probe into every Python process started with this directory first
on PYTHONPATH, when BUGDRILL_PROBE_DIR is set (see bugdrill_probe.py). Python imports only one
`sitecustomize`, so the one this file shadows (a distribution's, say) is run here as well."""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_shadowed_sitecustomize():
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _install_probe():
    try:
        import bugdrill_probe

        bugdrill_probe.install()
    except Exception:
        pass  # the probe must never stop the training script from starting


def _install_line_tracer():
    try:
        import bugdrill_lines

        bugdrill_lines.install()
    except Exception:
        pass  # nor the line tracer


_run_shadowed_sitecustomize()
if os.environ.get("BUGDRILL_PROBE_DIR"):
    if os.environ.get("BUGDRILL_PROBE_LINES"):
        _install_line_tracer()
    _install_probe()
