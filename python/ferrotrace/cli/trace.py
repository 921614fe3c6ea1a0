"""``ferrotrace trace``: run a program and record what its code does, natively.

Events are kept in native per-thread buffers while the program runs (every call, no ring
buffer). A Perfetto file is written by a native thread while the program runs and completed at
the end; Chrome JSON and text are written at the end. The end is when the program returns,
calls ``sys.exit``, or dies of an uncaught exception (after its ``atexit`` handlers and its
non-daemon threads). The program behaves as under plain ``python``: same ``sys.argv``,
``__main__``, exit code and tracebacks.
"""

from __future__ import annotations

import atexit
import os
import sys

from ferrotrace import Recorder
from ferrotrace.cli import CliError
from ferrotrace.cli._filters import QUICK_FILTER_OPTIONS, add_filter_arguments, filter_kwargs
from ferrotrace.cli._program import Program, exit_like_python
from ferrotrace.cli._quick_options import (
    BOOLEAN_OPTIONAL,
    DEFAULT_ONLY,
    STORE,
    STORE_TRUE,
    QuickOption,
    choice,
    parse_quickly,
)

TYPE_CHECKING = False  # not `typing`'s: importing it (or argparse) costs start-up
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import SimpleNamespace

SUMMARY = "run a program and write a trace of its calls (text, Chrome JSON or Perfetto)"

FORMATS = ("text", "chrome", "perfetto")
COLORS = ("auto", "always", "never")
DEFAULT_OUTPUT = {"text": "-", "chrome": "ferrotrace.json", "perfetto": "ferrotrace.pftrace"}
# Chrome and Perfetto files show calls: without `line` and `exception` events the engine
# switches line events off, which makes recording much cheaper. A call that exits by an
# exception still shows it (that is part of its `return`).
DEFAULT_EVENTS = {
    "text": "call,line,return,exception",
    "chrome": "call,return",
    "perfetto": "call,return",
}

DESCRIPTION = """\
Run a Python program as `python` would and record the events of the code you select.
Events are buffered natively (no Python code runs per event) and written when the program
ends, however it ends (perfetto: by a native thread while the program runs, completed when
it ends). Formats:
  text      one line per event, indented by call depth: file:line, function, the source
            line of `line` events, return values and exceptions (default; standard output,
            coloured on a terminal unless NO_COLOR is set)
  chrome    Chrome Trace Event JSON: one complete event per call, per thread
            (open in https://ui.perfetto.dev or chrome://tracing)
  perfetto  Perfetto protobuf trace: per-thread tracks (open in https://ui.perfetto.dev)"""

EPILOG = """\
examples:
  ferrotrace trace myscript.py --its-option
  ferrotrace trace --function 'Cart.*' --depth 1 myscript.py
  ferrotrace trace --module myapp --events call,return -m myapp.cli serve
  ferrotrace trace --format perfetto -o run.pftrace myscript.py
  ferrotrace trace --format chrome --file 'src/**/*.py' -o run.json -m pytest -x"""

# Options that take a value, to tell where ferrotrace's arguments end and the program's start.
_VALUE_OPTIONS = {
    "--module",
    "--file",
    "--function",
    "--depth",
    "--events",
    "--format",
    "-o",
    "--output",
    "--color",
}


def terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it (``COLUMNS``, else the
    terminal of standard output, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def help_formatter() -> type[argparse.RawDescriptionHelpFormatter]:
    """argparse's, given the width: argparse would import ``shutil`` (and with it ``bz2``,
    ``lzma``, ``zlib``) for it each time an option is added, a large part of start-up."""
    import argparse

    class HelpFormatter(argparse.RawDescriptionHelpFormatter):
        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            width = terminal_columns() - 2 if width is None else width
            super().__init__(prog, indent_increment, max_help_position, width)

    return HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The parser of ferrotrace's options (not the program: see :func:`split_argv`). Keep
    :data:`QUICK_OPTIONS` in step with it."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="ferrotrace trace",
        usage="%(prog)s [options] (script.py | -m module) [args ...]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=help_formatter(),
    )
    program = parser.add_argument_group("program (everything after it is its arguments)")
    program.add_argument("script", nargs="?", help="the script to run, e.g. myscript.py")
    program.add_argument(
        "-m", dest="run_module", metavar="MODULE", help="run a module, as python -m does"
    )
    program.add_argument("args", nargs="*", help="the program's arguments")
    add_filter_arguments(
        parser,
        default_events="call,line,return,exception for text, call,return for chrome and perfetto",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--format", choices=FORMATS, default="text", help="the output format (default: text)"
    )
    output.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write; '-' is standard output (default: standard output for text, "
        "ferrotrace.json for chrome, ferrotrace.pftrace for perfetto), e.g. -o run.pftrace",
    )
    output.add_argument(
        "--color",
        choices=COLORS,
        default="auto",
        help="colour text output: auto is on a terminal unless NO_COLOR is set (default: auto)",
    )
    output.add_argument(
        "--reprs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record the repr of returned values and the message of exceptions (runs their "
        "__repr__/__str__; default: on for text, off for chrome and perfetto, which then "
        "show exception types only)",
    )
    output.add_argument(
        "-q", "--quiet", action="store_true", help="no summary line on standard error"
    )
    return parser


# build_parser()'s actions for `parse_quickly`, in the order they are added (argparse sets its
# namespace's attributes in that order). `-m` and the positionals never reach it: split_argv
# takes them out first (a `-m` left among the options is argparse's to report).
QUICK_OPTIONS = (
    QuickOption("script", DEFAULT_ONLY),
    QuickOption("run_module", DEFAULT_ONLY),
    QuickOption("args", DEFAULT_ONLY, default=[]),
    *QUICK_FILTER_OPTIONS,
    QuickOption("format", STORE, ("--format",), default="text", convert=choice(*FORMATS)),
    QuickOption("output", STORE, ("-o", "--output")),
    QuickOption("color", STORE, ("--color",), default="auto", convert=choice(*COLORS)),
    QuickOption("reprs", BOOLEAN_OPTIONAL, ("--reprs", "--no-reprs")),
    QuickOption("quiet", STORE_TRUE, ("-q", "--quiet"), default=False),
)


def parse_options(options: Sequence[str]) -> argparse.Namespace | SimpleNamespace:
    """ferrotrace's options: what ``build_parser().parse_args(options)`` returns, without
    argparse's start-up cost when :func:`parse_quickly` can be sure of it."""
    quick = parse_quickly(options, QUICK_OPTIONS)
    if quick is not None:
        return quick
    return build_parser().parse_args(options)


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(ferrotrace's options, the program and its arguments): the program starts at the first
    argument that is neither an option nor an option's value, or at ``-m``."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return list(argv[:index]), list(argv[index + 1 :])
        if arg == "-m" or (arg.startswith("-m") and not arg.startswith("--")):
            return list(argv[:index]), list(argv[index:])
        if not arg.startswith("-") or arg == "-":
            return list(argv[:index]), list(argv[index:])
        index += 2 if arg in _VALUE_OPTIONS else 1
    return list(argv), []


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace | SimpleNamespace, Program]:
    options, rest = split_argv(argv)
    args = parse_options(options)
    if rest and rest[0].startswith("-m"):
        module = rest[0][2:] or (rest[1] if len(rest) > 1 else "")
        if not module:
            raise CliError("-m needs a module name, e.g. -m myapp")
        program_args = rest[1:] if rest[0] != "-m" else rest[2:]
        return args, Program(module=module, args=program_args)
    if not rest:
        raise CliError("give the program to run: script.py or -m module (see --help)")
    return args, Program(script=rest[0], args=rest[1:])


def check_writable(path: str) -> None:
    """Fails now, before the program runs, if the trace could not be written to ``path``."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise CliError(f"cannot write the trace to {path!r}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"cannot write the trace to {path!r}: no directory {directory!r}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CliError(f"cannot write the trace to {path!r}: permission denied")
    # A file of our own created and removed at once (not `tempfile`: importing it costs
    # milliseconds of every traced run's start-up).
    probe = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CliError(f"cannot write the trace to {path!r}: {reason}") from None


def use_color(choice: str, output: str) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return output == "-" and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class _Finisher:
    """Stops the recorder and writes the trace, once, at interpreter exit: after the program's
    own ``atexit`` handlers and non-daemon threads, however the program ended."""

    def __init__(
        self, recorder: Recorder, program: Program, output: str, fmt: str, color: bool, quiet: bool
    ) -> None:
        self.recorder = recorder
        self.program = program
        self.output = output
        self.format = fmt
        self.color = color
        self.quiet = quiet
        self.pid = os.getpid()

    def __call__(self) -> None:
        if os.getpid() != self.pid:
            return  # a forked child that exits normally must not overwrite the parent's trace
        try:
            # A recorder with an output (a file in Chrome or Perfetto format) writes it as it
            # stops; text and standard output are written here.
            self.recorder.stop()
            if not writes_itself(self.format, self.output):
                self.recorder.write(self.output, self.format, color=self.color)
        except (OSError, ValueError) as error:
            print(f"ferrotrace trace: error: cannot write the trace: {error}", file=sys.stderr)
        else:
            if not self.quiet and self.output != "-":
                print(
                    f"ferrotrace: {self.recorder.event_count} events "
                    f"({self.recorder.call_count} calls) written to {self.output}",
                    file=sys.stderr,
                )
        exit_like_python(self.program)


def writes_itself(fmt: str, output: str) -> bool:
    """Whether the recorder is given the output file (Perfetto then streams it)."""
    return fmt != "text" and output != "-"


def main(argv: Sequence[str]) -> int:
    args, program = parse(argv)
    output = args.output or DEFAULT_OUTPUT[args.format]
    reprs = args.reprs if args.reprs is not None else args.format == "text"
    destination = {"output": output, "format": args.format}
    try:
        recorder = Recorder(
            **filter_kwargs(args, default_events=DEFAULT_EVENTS[args.format]),
            reprs=reprs,
            # Only text shows where a frame returned or raised; finding it costs per event.
            exit_lines=args.format == "text",
            **(destination if writes_itself(args.format, output) else {}),
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    check_writable(output)
    try:
        program.prepare()
    except (SyntaxError, ValueError) as error:
        # The program's own error, reported as python reports it.
        sys.excepthook(type(error), error, None)
        return 1
    finisher = _Finisher(
        recorder, program, output, args.format, use_color(args.color, output), args.quiet
    )

    def start() -> None:
        try:
            recorder.start(all_threads=True)
        except RuntimeError as error:  # FerrotraceError, or no free sys.monitoring tool id
            raise CliError(str(error)) from None
        except OSError as error:  # the streamed file could not be created after all
            raise CliError(f"cannot write the trace to {output!r}: {error}") from None
        atexit.register(finisher)

    return program.run(on_start=start)
