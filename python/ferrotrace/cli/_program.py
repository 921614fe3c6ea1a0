"""Running a program as ``python script.py ARGS`` or ``python -m module ARGS`` would, for
subcommands that run one under a tool (as ``cProfile``, ``trace`` and ``pdb`` do).

What the program sees is what plain ``python`` gives it: ``sys.argv``, ``sys.path[0]`` (the
script's directory, or the current directory with ``-m``), a fresh ``__main__`` module in
``sys.modules`` with ``__name__ == "__main__"``, ``__file__``, ``__spec__`` and ``__loader__``
as ``python`` sets them. An uncaught exception is reported through ``sys.excepthook`` with the
same traceback (the tool's own frames removed) and exit code 1; ``sys.exit`` propagates as it
is.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import io
import os
import sys
import types

from ferrotrace import _native
from ferrotrace.cli import CliError

TYPE_CHECKING = False  # not `typing`'s: importing it (or `collections`) costs start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import CodeType, TracebackType


def _run_module_as_main() -> Callable[..., object]:
    """runpy's own ``python -m`` entry, where a traceback of ``python -m`` starts (plain python
    shows runpy's frames too). Imported for ``-m`` only (``python -m ferrotrace`` has it
    already; the ``ferrotrace`` script need not pay for it), by :meth:`Program.prepare`:
    before the program's ``sys.path`` is set and before any tool starts."""
    import runpy

    return runpy._run_module_as_main  # type: ignore[attr-defined]


class Program:
    """A script or module to run, prepared (found, compiled) before any tool starts."""

    def __init__(
        self, *, script: str | None = None, module: str | None = None, args: Sequence[str] = ()
    ) -> None:
        if (script is None) == (module is None):
            raise CliError("give the program to run: script.py or -m module")
        self.script = script
        self.module = module
        self.args = list(args)
        self.code: CodeType | None = None
        #: Set when the program ended by an uncaught KeyboardInterrupt: plain python then
        #: ends by SIGINT (see :func:`exit_like_python`).
        self.interrupted = False

    @property
    def name(self) -> str:
        return self.script if self.script is not None else f"-m {self.module}"

    def prepare(self) -> None:
        """Finds the program; compiles a script. A missing program is a :class:`CliError`; a
        script that does not compile raises its ``SyntaxError``, to report as python would."""
        if self.script is not None:
            path = os.path.abspath(self.script)
            try:
                with io.open_code(path) as file:
                    source = file.read()
            except OSError as error:
                raise CliError(f"can't open file {self.script!r}: {error}") from None
            # compile(source, path, "exec", dont_inherit=True), minus its start-up cost.
            self.code = _native._compile_script(source, path)
        else:
            assert self.module is not None
            _run_module_as_main()
            try:
                spec = importlib.util.find_spec(self.module)
            except (ImportError, ValueError) as error:
                raise CliError(f"cannot run -m {self.module}: {error}") from None
            if spec is None:
                raise CliError(f"no module named {self.module!r}")

    def run(self, on_start: Callable[[], object] | None = None) -> int:
        """Runs the prepared program in this process, calling ``on_start`` (whose errors
        propagate) once ``sys.argv``, ``sys.path`` and ``__main__`` are set, just before its
        first line. Returns 0, or 1 after reporting an uncaught exception as python does;
        ``SystemExit`` propagates unchanged."""
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        if self.script is not None:
            self._prepare_script(main)
        else:
            sys.argv[:] = [self.module or "", *self.args]
            _set_path0(os.getcwd())
        if on_start is not None:
            on_start()
        try:
            if self.script is not None:
                assert self.code is not None
                exec(self.code, main.__dict__)
            else:
                # runpy's own `python -m` entry: argv[0] becomes the module's file, as in python.
                _run_module_as_main()(self.module, alter_argv=True)
        except SystemExit:
            raise
        except BaseException as error:
            self.interrupted = isinstance(error, KeyboardInterrupt)
            report_uncaught(error, self._program_frames(error.__traceback__))
            return 1
        return 0

    def _prepare_script(self, main: types.ModuleType) -> None:
        assert self.script is not None and self.code is not None
        path = self.code.co_filename
        sys.argv[:] = [self.script, *self.args]
        _set_path0(os.path.dirname(os.path.realpath(path)))
        main.__dict__.update(
            __file__=path,
            __cached__=None,
            __package__=None,
            __spec__=None,
            __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        )

    def _program_frames(self, tb: TracebackType | None) -> TracebackType | None:
        """The traceback from the program's first frame on, as plain python shows it."""
        start = self.code if self.script is not None else _run_module_as_main().__code__
        entry = tb
        while entry is not None and entry.tb_frame.f_code is not start:
            entry = entry.tb_next
        return entry if entry is not None else tb


def _set_path0(directory: str) -> None:
    if sys.path:
        sys.path[0] = directory
    else:
        sys.path.insert(0, directory)


def report_uncaught(error: BaseException, tb: TracebackType | None) -> None:
    """What python does with an uncaught exception: ``sys.last_*`` and ``sys.excepthook``
    (and the fallback report when the hook itself fails)."""
    error.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = error
    hook = getattr(sys, "excepthook", None)
    try:
        if hook is None:
            raise RuntimeError("lost sys.excepthook")
        hook(type(error), error, tb)
    except BaseException as hook_error:  # noqa: BLE001 - reported as python does
        print("Error in sys.excepthook:", file=sys.stderr)
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(error), error, tb)


def exit_like_python(program: Program) -> None:
    """After an uncaught KeyboardInterrupt python ends by SIGINT (exit status 130 in a
    shell); do the same, once everything else is done."""
    if not program.interrupted:
        return
    import signal

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
