"""The `bugdrill` command line.

    bugdrill demo [--steps N] [--preset tiny|small]   train the practice codebase in a fresh copy

Training runs in a child process with the copy as its working directory, the way a
candidate would run it; its output streams to this terminal.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.codebase import PICOCHAT_DIR, copy_codebase


def demo(args):
    workdir = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="bugdrill-demo-")) / "picochat"
    copy_codebase(PICOCHAT_DIR, workdir)
    print(f"practice codebase copied to {workdir}", file=sys.stderr)
    command = [sys.executable, "-m", "scripts.base_train", f"--preset={args.preset}", f"--num_iterations={args.steps}"]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr)
    return subprocess.run(command, cwd=workdir).returncode


def build_parser():
    parser = argparse.ArgumentParser(prog="bugdrill", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="train the built-in practice codebase in a fresh copy")
    p.add_argument("--preset", choices=["tiny", "small"], default="tiny")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps")
    p.add_argument("--workspace", default=None, help="directory to copy into (must not exist)")
    p.set_defaults(handler=demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
