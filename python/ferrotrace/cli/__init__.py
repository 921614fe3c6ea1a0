"""The ``ferrotrace`` command: one module per subcommand.

    ferrotrace trace [options] (script.py | -m module) [args...]
    ferrotrace debug [-c COMMAND] (script.py | -m module) [args...]

A subcommand is a module of this package whose name does not start with ``_``, with
``SUMMARY`` (one line for ``ferrotrace --help``) and ``main(argv: list[str]) -> int`` (the
arguments after the subcommand's name; returns the exit code). Adding a subcommand is adding
such a module: :func:`commands` finds them for the usage; running one imports only it. A
mistake the user can fix is raised as :class:`CliError` and printed on one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


class CliError(Exception):
    """Printed as ``ferrotrace COMMAND: error: MESSAGE``; the exit code is 2."""


_USAGE = "usage: ferrotrace <command> [options] ...\n\ncommands:\n"
_EXAMPLES = """\
examples:
  ferrotrace trace myscript.py --its-option
  ferrotrace trace --format perfetto -o run.pftrace -m myapp
  ferrotrace debug -c 'b app.py:42' -c c app.py"""


def commands() -> dict[str, ModuleType]:
    """The subcommand modules, by name."""
    import pkgutil  # Only for the usage: a traced run should not pay for it, nor for typing.

    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def _usage(available: dict[str, ModuleType]) -> str:
    lines = [f"  {name:<8} {module.SUMMARY}" for name, module in available.items()]
    return (
        _USAGE
        + "\n".join(lines)
        + f"\n\n'ferrotrace <command> --help' explains a command.\n\n{_EXAMPLES}"
    )


def _command(name: str) -> ModuleType | None:
    """The subcommand module `name`, imported alone (a traced run's start-up time is part of
    its overhead: the other subcommands' imports are not paid for); None if there is none."""
    if name.startswith("_") or not name.isidentifier():
        return None
    qualified = f"{__name__}.{name}"
    if importlib.util.find_spec(qualified) is None:
        return None
    return importlib.import_module(qualified)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(commands()))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = _command(name)
    if command is None:
        print(f"ferrotrace: unknown command {name!r}\n\n{_usage(commands())}", file=sys.stderr)
        return 2
    try:
        return command.main(rest)
    except CliError as error:
        print(f"ferrotrace {name}: error: {error}", file=sys.stderr)
        return 2
