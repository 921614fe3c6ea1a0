"""The ``ferrotrace`` command: one module per subcommand, each with ``main(argv) -> int``.

ferrotrace debug [-c COMMAND] (script.py | -m module) [args...]
"""

from __future__ import annotations

import importlib
import sys

# Subcommand name -> (module, one-line summary). Each module has `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "debug": ("ferrotrace.cli.debug", "run a program under pdb with native breakpoints"),
}

_USAGE = "usage: ferrotrace <command> [options] ...\n\ncommands:\n"


def _usage() -> str:
    lines = [f"  {name:<8} {summary}" for name, (_, summary) in sorted(COMMANDS.items())]
    return _USAGE + "\n".join(lines) + "\n\n'ferrotrace <command> --help' explains a command."


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"ferrotrace: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)
