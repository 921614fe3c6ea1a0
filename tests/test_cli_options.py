"""``ferrotrace trace`` reads its options without argparse when it can (``parse_quickly``,
for start-up time); whenever it does, the result is exactly argparse's: the same attributes,
in the same order, with the same values and types. Anything it is not sure of goes to argparse
(help, errors and abbreviations are argparse's own): checked here on every option, their
combinations, ``=`` forms, abbreviations, values that look like options, bad values and
random command lines, and through ``split_argv`` on whole command lines (``--``, ``-m``,
program arguments that look like options).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random

import pytest

from ferrotrace.cli import trace
from ferrotrace.cli._quick_options import parse_quickly

PARSER = trace.build_parser()


def by_argparse(options: list[str]) -> dict[str, object] | None:
    """argparse's namespace as a dict (in attribute order), or None if it exits (an error,
    or --help)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(PARSER.parse_args(options))
        except SystemExit:
            return None


def quick(options: list[str]) -> dict[str, object] | None:
    parsed = parse_quickly(options, trace.QUICK_OPTIONS)
    return None if parsed is None else vars(parsed)


def assert_same_or_declined(options: list[str]) -> bool:
    """True if the quick parser accepted `options` (and agreed with argparse)."""
    fast = quick(options)
    if fast is None:
        return False
    slow = by_argparse(options)
    assert slow is not None, f"quick parser accepted what argparse rejects: {options}"
    assert list(fast.items()) == list(slow.items()), options
    for name, value in fast.items():
        assert type(value) is type(slow[name]), (options, name)
    return True


VALUES = {
    "--module": ["myapp", "tests.test_*", "a/b", ""],
    "--file": ["**", "src/**/*.py", "[abc", "-", "x=y"],
    "--function": ["handle_*", "Cart.total", "<lambda>"],
    "--depth": ["0", "2", "007", "-1", "+3", " 3", "3_0", "x", "", "\u0663", "1.5"],
    "--events": ["call,return", "call,bogus", ""],
    "--format": ["text", "chrome", "perfetto", "bogus", "", "Perfetto"],
    "-o": ["run.pftrace", "-", "out dir/t.json", ""],
    "--output": ["run.json", "-"],
    "--color": ["auto", "always", "never", "sometimes"],
}
FLAGS = ["--user-code", "--reprs", "--no-reprs", "-q", "--quiet"]


def single_option_lines() -> list[list[str]]:
    lines: list[list[str]] = [[]]
    for option, values in VALUES.items():
        lines.append([option])  # no value
        for value in values:
            lines.append([option, value])
            lines.append([f"{option}={value}"])
            lines.append([option, value, option, "last"])
    for flag in FLAGS:
        lines += [[flag], [flag, flag], [f"{flag}=1"], [f"{flag}="]]
    return lines


# Options argparse accepts by a prefix, or in forms the quick parser leaves to it.
ODD = [
    "--form", "--fo", "--out", "--mod", "--func", "--fun", "--f", "--user", "--rep", "--no-r",
    "--q", "--quie", "--dep", "--ev", "--col", "-h", "--help", "-m", "-mx", "-qo", "-oq",
    "-orun.json", "-o=run.json", "-q=1", "--", "-", "--no-quiet", "--no-user-code", "-x",
    "--bogus", "script.py", "-1",
]  # fmt: skip


def random_lines(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    options = list(VALUES) + FLAGS
    all_values = [v for values in VALUES.values() for v in values]
    lines = []
    for _ in range(count):
        line: list[str] = []
        for _ in range(rng.randint(1, 7)):
            token = rng.choice(ODD if rng.random() < 0.05 else options)
            if token in VALUES and rng.random() < 0.8:
                values = VALUES[token] if rng.random() < 0.8 else all_values
                value = rng.choice(values)
                line += [f"{token}={value}"] if rng.random() < 0.2 else [token, value]
            else:
                line.append(token)
        lines.append(line)
    return lines


def test_each_option_alone_and_repeated() -> None:
    accepted = [line for line in single_option_lines() if assert_same_or_declined(line)]
    # The plain forms of every option are read quickly, not left to argparse.
    for option, values in VALUES.items():
        assert [option, values[0]] in accepted, option
    for flag in FLAGS:
        assert [flag] in accepted, flag


def test_combinations_of_options() -> None:
    plain = [
        ["-q"], ["--user-code"], ["--no-reprs"], ["--format", "perfetto"], ["-o", "-"],
        ["--file", "**"], ["--module", "app"], ["--depth", "2"], ["--events", "call"],
        ["--color", "never"], ["--function", "f"], ["--reprs"], ["--output=x.json"],
    ]  # fmt: skip
    accepted = 0
    for size in (2, 3):
        for combination in itertools.permutations(plain, size):
            accepted += assert_same_or_declined([arg for option in combination for arg in option])
    assert accepted > 1000


def test_abbreviations_and_odd_forms_are_left_to_argparse() -> None:
    for token in ODD:
        for line in ([token], [token, "perfetto"], ["-q", token, "x"], [token, "-q"]):
            assert quick(line) is None, line


@pytest.mark.parametrize("seed", range(4))
def test_random_command_lines(seed: int) -> None:
    lines = random_lines(2500, seed)
    accepted = sum(assert_same_or_declined(line) for line in lines)
    assert 0 < accepted < len(lines)


def test_quick_options_describe_the_parser() -> None:
    actions = [action for action in PARSER._actions if action.dest != "help"]
    assert [option.dest for option in trace.QUICK_OPTIONS] == [a.dest for a in actions]
    for option, action in zip(trace.QUICK_OPTIONS, actions, strict=True):
        assert set(option.strings) <= set(action.option_strings), option.dest
        if action.option_strings:  # a positional's parsed value is not always its default
            assert option.default == action.default, option.dest


COMMAND_LINES = [
    ["prog.py"],
    ["-q", "--format", "perfetto", "--file", "**", "-o", "X.pftrace", "prog.py"],
    ["--format", "chrome", "-o", "t.json", "prog.py", "--format", "text", "-q"],
    ["-m", "pkg.tool", "--its-option", "-o", "x"],
    ["--file", "**", "-m", "pkg.tool", "arg"],
    ["-mpkg.tool", "--help"],
    ["--depth", "1", "--function", "Cart.*", "--", "-script-.py", "-q"],
    ["--", "prog.py", "--quiet"],
    ["-q", "prog.py", "-q", "--", "-m"],
    ["--reprs", "-", "x"],
    ["--form", "perfetto", "prog.py"],
    ["-o", "-", "prog.py"],
    ["--quiet=1", "prog.py"],
    ["--events=call,return", "--module=app", "prog.py", "a", "b"],
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_whole_command_lines(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def parsed() -> tuple[list[tuple[str, object]], tuple[object, ...]] | str:
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            try:
                args, program = trace.parse(argv)
            except SystemExit as error:
                return f"exit {error.code}: {stderr.getvalue()}"
            except trace.CliError as error:
                return f"CliError: {error}"
        return list(vars(args).items()), (program.script, program.module, program.args)

    quickly = parsed()
    monkeypatch.setattr(trace, "parse_quickly", lambda options, table: None)
    assert quickly == parsed()
