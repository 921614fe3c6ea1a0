"""Filter options shared by subcommands: which code to look at (``--module``, ``--file``,
``--function``, ``--depth``) and which events (``--events``). They map one to one onto the
keyword arguments of ``ferrotrace.Tracer`` and ``ferrotrace.Recorder``."""

from __future__ import annotations

from ferrotrace.cli._quick_options import (
    APPEND,
    STORE,
    STORE_TRUE,
    QuickOption,
    natural_number,
)

TYPE_CHECKING = False  # not `typing`'s: importing it (or argparse) costs start-up
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace

FILTER_HELP = """\
which code (default: your own code, i.e. everything outside the standard library and
site-packages; patterns of one kind are alternatives, different kinds must all match)"""


def add_filter_arguments(parser: argparse.ArgumentParser, *, default_events: str) -> None:
    group = parser.add_argument_group("filter", FILTER_HELP)
    group.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="a module and everything below it; globs allowed (repeatable), e.g. "
        "--module myapp --module 'tests.test_*'",
    )
    group.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="GLOB",
        help="a path glob against the code's file name; ** spans directories, a relative "
        "pattern matches the end of the path (repeatable), e.g. --file 'src/**/*.py'",
    )
    group.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME",
        help="a function name, or a qualified name when it has a dot; globs allowed "
        "(repeatable), e.g. --function 'handle_*' --function Cart.total",
    )
    group.add_argument(
        "--user-code",
        action="store_true",
        help="also select your own code when other patterns are given",
    )
    group.add_argument(
        "--depth",
        type=_depth,
        default=0,
        metavar="N",
        help="also trace calls up to N levels below a selected function, e.g. --depth 2",
    )
    group.add_argument(
        "--events",
        metavar="LIST",
        help="comma-separated events to keep, from call,line,return,exception,opcode "
        f"(default: {default_events}), e.g. --events call,return",
    )


# The same options for `parse_quickly`, in the order they are added above.
QUICK_FILTER_OPTIONS = (
    QuickOption("module", APPEND, ("--module",), default=[]),
    QuickOption("file", APPEND, ("--file",), default=[]),
    QuickOption("function", APPEND, ("--function",), default=[]),
    QuickOption("user_code", STORE_TRUE, ("--user-code",), default=False),
    QuickOption("depth", STORE, ("--depth",), default=0, convert=natural_number),
    QuickOption("events", STORE, ("--events",)),
)


def _depth(text: str) -> int:
    import argparse  # imported already: only argparse's parser calls this

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def filter_kwargs(
    args: argparse.Namespace | SimpleNamespace, *, default_events: str
) -> dict[str, object]:
    """The filter options as ``Tracer``/``Recorder`` keyword arguments."""
    return {
        "modules": args.module,
        "files": args.file,
        "functions": args.function,
        "user_code": args.user_code,
        "events": args.events if args.events is not None else default_events,
        "depth": args.depth,
    }
