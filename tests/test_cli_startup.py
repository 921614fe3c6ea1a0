"""What ``ferrotrace trace`` does before the program runs costs every traced run: it imports
nothing the run does not need (argparse is only for command lines the quick parser leaves to
it, sysconfig only for a filter that selects the user's code), and compiles the script as
``compile()`` would without building the ``ast`` node types. ``import ferrotrace`` does not
import ``threading`` (a Tracer that filters threads by name imports it when it starts). The
same holds for the ``ferrotrace`` command the installer wrote: pip 25.2 and later (and uv)
write one that does not import ``re``, which the project's venvs get.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ferrotrace import _native

HEAVY = ("argparse", "gettext", "locale", "re", "enum", "sysconfig", "typing", "shutil")

SHOW_HEAVY = f"""\
import sys
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


#: The ``ferrotrace`` command the installer wrote (pip 25.2 and later: without ``import re``).
CONSOLE_SCRIPT = Path(sys.executable).parent / "ferrotrace"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["python -m ferrotrace", "ferrotrace"])
@pytest.mark.parametrize(
    "options",
    [
        ["-q", "--format", "perfetto", "--file", "**", "-o", "t.pftrace"],
        ["--format=chrome", "-o", "t.json", "--function", "main", "--depth", "2"],
    ],
    ids=["perfetto", "chrome"],
)
def test_common_command_lines_import_nothing_heavy(
    options: list[str], command: str, tmp_path: Path
) -> None:
    (tmp_path / "prog.py").write_text(SHOW_HEAVY)
    plain = run("prog.py", cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout == "[]\n", plain.stdout + plain.stderr
    launcher = [sys.executable, "-m", "ferrotrace"]
    if command == "ferrotrace":
        launcher = [str(CONSOLE_SCRIPT)]
    traced = subprocess.run(
        [*launcher, "trace", *options, "prog.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (traced.returncode, traced.stdout) == (0, "[]\n"), traced.stderr


def test_user_code_filter_still_finds_the_library(tmp_path: Path) -> None:
    # The default filter (the user's code) asks sysconfig for the library's directories:
    # json's functions are not recorded, the script's are.
    (tmp_path / "prog.py").write_text("import json\n\ndef main():\n    json.dumps([1])\n\nmain()\n")
    traced = run("-m", "ferrotrace", "trace", "--events", "call", "prog.py", cwd=tmp_path)
    assert traced.returncode == 0, traced.stderr
    calls = [line.split() for line in traced.stdout.splitlines()]
    assert calls == [["call", "prog.py:1", "<module>"], ["call", "prog.py:3", "main"]]


SOURCES = {
    "empty": b"",
    "plain": b"x = 1\nprint(x)\n",
    "no final newline": b"def f():\n    return 1",
    "future import": b"from __future__ import annotations\ndef f(a: undefined) -> int: ...\n",
    "latin-1 cookie": "# -*- coding: latin-1 -*-\ns = 'caf\u00e9'\n".encode("latin-1"),
    "utf-8 bom": b"\xef\xbb\xbfs = 'x'\n",
    "crlf": b"a = 1\r\nb = 2\r\n",
    "top-level await": b"await x\n",
    "syntax error": b"def f(:\n",
    "indentation error": b"if x:\npass\n",
    "bad utf-8": b"s = '\xff'\n",
    "unknown cookie": b"# coding: no-such-codec\nx = 1\n",
    "null byte": b"x = 1\0\n",
    "match statement": b"match x:\n    case [a, *rest]:\n        pass\n",
}


@pytest.mark.parametrize("name", SOURCES)
def test_compile_script_is_compile(name: str, tmp_path: Path) -> None:
    source = SOURCES[name]
    path = str(tmp_path / "prog.py")

    def outcome(compile_function):
        try:
            code = compile_function(source, path)
        except Exception as error:  # noqa: BLE001 - the error is what is compared
            return ("error", type(error), error.args)
        return ("code", code, code.co_filename, code.co_flags, code.co_consts, code.co_names)

    expected = outcome(lambda src, filename: compile(src, filename, "exec", dont_inherit=True))
    assert outcome(_native._compile_script) == expected


THREAD_FILTER = """\
import sys
import ferrotrace
print("threading" in sys.modules)

def work():
    return 1

calls = []

def callback(frame, event, arg):
    calls.append((event, frame.f_code.co_name))
    return callback

for threads in (["MainThread"], ["worker-*"]):
    with ferrotrace.Tracer(callback, functions=["work"], threads=threads):
        work()
    print(threads, calls)
    calls.clear()
"""


def test_import_ferrotrace_leaves_threading_to_thread_filters(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(THREAD_FILTER)
    result = run("prog.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "False",
        "['MainThread'] [('call', 'work'), ('line', 'work'), ('return', 'work')]",
        "['worker-*'] []",
    ]


NO_THREADING = """\
import _thread
import json
import sys
import time
import ferrotrace

def work():
    return 1

def in_thread(done):
    work()
    done.append(True)

recorder = ferrotrace.Recorder(functions=["work"], events="call,return")
recorder.start(all_threads=True)
print("threading" in sys.modules)
work()
done = []
_thread.start_new_thread(in_thread, (done,))
while not done:
    time.sleep(0.001)
recorder.stop()
print("threading" in sys.modules)
recorder.write("t.json", "chrome")
events = json.load(open("t.json"))["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
print(sorted((names.get(e["tid"], ""), e["name"]) for e in events if e["ph"] == "X"))
"""


def test_a_recorder_leaves_threading_unimported(tmp_path: Path) -> None:
    # A thread's name comes from `threading` once the program imported it; before, only the
    # main thread has one (and asking `threading` would make the others dummy threads).
    (tmp_path / "prog.py").write_text(NO_THREADING)
    result = run("prog.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "False",
        "False",
        "[('', 'work'), ('MainThread', 'work')]",
    ]
