"""Options parsed without argparse, exactly as argparse would, or not at all.

Importing argparse (and with it ``re``, ``enum`` and ``functools``) and building a parser (whose
translated strings make ``gettext`` import ``locale`` and look for message catalogues) is the
largest part of a traced run's start-up. Most command lines only give known options by their
full names with plain values; :func:`parse_quickly` reads those into the attributes argparse
would set, in the same order, and returns None for anything else: ``--help``, an
abbreviation, an unknown option, a value that starts with ``-``, a value argparse would
reject, ``-oFILE``. The caller then lets argparse parse the same list, so its errors and help
are argparse's own. tests/test_cli_options.py checks both agree on many command lines.
"""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False  # not `typing`'s: importing it costs start-up too
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# What an option does with its value, as argparse's actions do.
STORE = "store"
APPEND = "append"
STORE_TRUE = "store_true"
BOOLEAN_OPTIONAL = "boolean_optional"  # argparse.BooleanOptionalAction: --x / --no-x
DEFAULT_ONLY = "default_only"  # a positional, or an option this parser leaves to argparse


class QuickOption:
    """One argparse action as far as :func:`parse_quickly` needs it. ``convert`` turns a value
    into the stored one, or returns :data:`DECLINE` where argparse's type or choices might
    object (argparse then decides)."""

    __slots__ = ("dest", "action", "strings", "default", "convert")

    def __init__(
        self,
        dest: str,
        action: str,
        strings: tuple[str, ...] = (),
        default: object = None,
        convert: Callable[[str], object] | None = None,
    ) -> None:
        self.dest = dest
        self.action = action
        self.strings = strings
        self.default = default
        self.convert = convert


DECLINE = object()


def choice(*choices: str) -> Callable[[str], object]:
    """``choices=``: the value itself if it is one of them."""
    return lambda value: value if value in choices else DECLINE


def natural_number(value: str) -> object:
    """A number of ASCII digits (anything else is left to the option's own ``type``)."""
    return int(value) if value.isascii() and value.isdigit() else DECLINE


def parse_quickly(options: Sequence[str], table: Sequence[QuickOption]) -> SimpleNamespace | None:
    """The namespace ``parser.parse_args(options)`` would return for the parser ``table``
    describes (its actions in the order they were added), or None if this is not certain."""
    by_string = {string: option for option in table for string in option.strings}
    values: dict[str, object] = {}
    for option in table:
        default = option.default
        # argparse gives every parse a list of its own (append copies the default).
        values[option.dest] = list(default) if isinstance(default, list) else default
    index = 0
    while index < len(options):
        arg = options[index]
        index += 1
        name, equals, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        option = by_string.get(name)
        if option is None:
            return None
        if option.action in (STORE, APPEND):
            if equals:
                if not attached:  # `--opt=`: argparse versions differ; let it decide
                    return None
                value = attached
            else:
                if index == len(options):
                    return None
                value = options[index]
                index += 1
                # argparse takes `-` as a value and anything else starting with `-` as an
                # option (or a negative number, which no option here accepts as a value).
                if value.startswith("-") and value != "-":
                    return None
            converted = option.convert(value) if option.convert is not None else value
            if converted is DECLINE:
                return None
            if option.action == STORE:
                values[option.dest] = converted
            else:
                stored = values[option.dest]
                assert isinstance(stored, list)
                stored.append(converted)
        elif equals:
            return None  # argparse: "ignored explicit argument"
        elif option.action == STORE_TRUE:
            values[option.dest] = True
        elif option.action == BOOLEAN_OPTIONAL:
            values[option.dest] = not name.startswith("--no-")
        else:
            return None
    return SimpleNamespace(**values)
