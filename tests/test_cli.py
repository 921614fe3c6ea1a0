"""The ``ferrotrace`` command line, run as a user runs it (a subprocess).

* ``--help`` at both levels; the console script and ``python -m ferrotrace`` are the same;
* every user error is one line on stderr and a non-zero exit, never a traceback, and is found
  before the program runs;
* ``ferrotrace trace``: the traced program sees what plain ``python`` gives it (``sys.argv``,
  ``__main__``, ``sys.path[0]``, exit code, the traceback of an uncaught exception) and the
  trace is complete and valid however the program ends; text output exact for a small
  program; Chrome and Perfetto files per thread.

Tracing runs on both backends of the filtered engine: ``sys.monitoring`` (3.12+) and the
PEP 523 frame-evaluation hook (3.11).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

CONSOLE_SCRIPT = Path(sys.executable).parent / "ferrotrace"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH")}
    env.update(extra)
    return env


def ferrotrace(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "ferrotrace", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=120,
    )


def python(*args: str, cwd: Path):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=clean_env()
    )


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


# --- help -------------------------------------------------------------------------------------


def test_help_explains_every_option_with_examples(tmp_path: Path) -> None:
    top = ferrotrace("--help", cwd=tmp_path)
    assert top.returncode == 0
    assert "trace " in top.stdout and "debug " in top.stdout
    assert "examples:" in top.stdout and "ferrotrace trace " in top.stdout

    trace = ferrotrace("trace", "--help", cwd=tmp_path)
    assert trace.returncode == 0
    for option in ("--module", "--file", "--function", "--events", "--depth", "--format",
                   "--output", "--color", "--reprs", "--quiet", "-m MODULE", "script"):  # fmt: skip
        assert option in trace.stdout, option
    assert "NO_COLOR" in trace.stdout
    assert trace.stdout.count("ferrotrace trace ") >= 5  # the examples


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],
        ["frobnicate"],
        ["trace", "--help"],
        ["trace", "--bogus", "prog.py"],
        ["trace", "--format", "xml", "prog.py"],
        ["trace"],
        ["trace", "nosuch.py"],
        ["trace", "prog.py", "a", "--b"],
    ],
    ids=repr,
)
def test_console_script_is_python_m_ferrotrace(args: list[str], tmp_path: Path) -> None:
    # The command pip writes runs the same main(): same output, messages and exit codes,
    # with the program's name as ferrotrace prints it (not the script's path).
    write(tmp_path, "prog.py", "import sys\nprint(sys.argv)\nsys.exit(3)\n")
    script = subprocess.run(
        [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path,
        env=clean_env(), timeout=120,
    )  # fmt: skip
    assert outcome(script) == outcome(ferrotrace(*args, cwd=tmp_path))
    assert str(CONSOLE_SCRIPT.parent) not in script.stdout + script.stderr


def test_usage_and_errors_name_the_command(tmp_path: Path) -> None:
    bogus = ferrotrace("trace", "--bogus", "prog.py", cwd=tmp_path)
    assert outcome(bogus) == (
        2,
        "",
        "usage: ferrotrace trace [options] (script.py | -m module) [args ...]\n"
        "ferrotrace trace: error: unrecognized arguments: --bogus\n",
    )
    usage = ferrotrace("trace", "--help", cwd=tmp_path).stdout
    assert usage.startswith(
        "usage: ferrotrace trace [options] (script.py | -m module) [args ...]\n\n"
    )
    assert ferrotrace("--help", cwd=tmp_path).stdout.startswith(
        "usage: ferrotrace <command> [options] ...\n"
    )


def test_no_or_unknown_command(tmp_path: Path) -> None:
    assert ferrotrace(cwd=tmp_path).returncode == 2
    unknown = ferrotrace("frobnicate", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr


# --- errors -----------------------------------------------------------------------------------

ERRORS = {
    "missing script": (["nosuch.py"], "can't open file 'nosuch.py'"),
    "missing module": (["-m", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
    "no program": ([], "give the program to run"),
    "bad glob": (["--file", "[abc", "prog.py"], 'bad file pattern "[abc"'),
    "bad module pattern": (["--module", "a/b", "prog.py"], "module pattern"),
    "unknown event": (["--events", "call,bogus", "prog.py"], 'unknown event "bogus"'),
    "missing output directory": (["-o", "no/such/dir/t.json", "prog.py"], "no directory"),
    "output is a directory": (["--format", "chrome", "-o", ".", "prog.py"], "is a directory"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_user_errors_are_one_line_before_the_program_runs(case: str, tmp_path: Path) -> None:
    args, message = ERRORS[case]
    write(tmp_path, "prog.py", "open('ran', 'w').close()\n")
    result = ferrotrace("trace", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("ferrotrace trace: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_output_directory(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "open('ran', 'w').close()\n")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = ferrotrace("trace", "-o", "locked/t.pftrace", "prog.py", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "cannot write the trace" in result.stderr
    assert not (tmp_path / "ran").exists()


def test_trace_runs_on_every_version(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "print('hello')\n")
    result = ferrotrace(
        "trace", "-q", "--format", "chrome", "-o", "t.json", "prog.py", cwd=tmp_path
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring tool ids are 3.12+")
def test_no_free_monitoring_tool_is_a_one_line_error(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "open('ran', 'w').close()\n")
    site = write(
        tmp_path,
        "site/sitecustomize.py",
        "import sys\nfor tool in range(6):\n    sys.monitoring.use_tool_id(tool, 'other')\n",
    )
    env = clean_env(PYTHONPATH=str(site.parent))
    result = ferrotrace(
        "trace", "-o", "t.json", "--format", "chrome", "prog.py", cwd=tmp_path, env=env
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ferrotrace trace: error: ")
    assert "tool id" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "ran").exists() and not (tmp_path / "t.json").exists()


# --- the traced program behaves as under python -----------------------------------------------

SHOW_ENVIRONMENT = """\
import os, sys
import helper
print("argv", sys.argv)
print("name", __name__, sys.modules["__main__"].__dict__ is globals())
print("file", __file__)
print("path0", sys.path[0])
print("spec", __spec__ and __spec__.name)
print("helper", helper.VALUE)
"""


def test_script_sees_what_python_gives_it(tmp_path: Path) -> None:
    write(tmp_path, "app/main.py", SHOW_ENVIRONMENT)
    write(tmp_path, "app/helper.py", "VALUE = 'from the script directory'\n")
    args = ["app/main.py", "-m", "x", "--format", "text", "--", "last"]
    plain = python(*args, cwd=tmp_path)
    traced = ferrotrace("trace", "-q", "--format", "chrome", "-o", "t.json", *args, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")
    assert "argv ['app/main.py', '-m', 'x', '--format', 'text', '--', 'last']" in traced.stdout


def test_module_sees_what_python_m_gives_it(tmp_path: Path) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(
        tmp_path, "pkg/tool.py", SHOW_ENVIRONMENT.replace("import helper", "from pkg import helper")
    )
    write(tmp_path, "pkg/helper.py", "VALUE = 'from the package'\n")
    plain = python("-m", "pkg.tool", "a", "-b", cwd=tmp_path)
    traced = ferrotrace("trace", "-q", "-o", "t.txt", "-m", "pkg.tool", "a", "-b", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, plain.stdout, "")


ENDINGS = {
    "normal": "",
    "sys.exit(3)": "sys.exit(3)",
    "sys.exit(message)": "sys.exit('stopping: bad input')",
    "uncaught exception": "raise ValueError('bad count')",
    "exception with a cause": "try:\n        {}['k']\n    except KeyError as e:\n"
    "        raise RuntimeError('lookup failed') from e",
    "KeyboardInterrupt": "raise KeyboardInterrupt",
}

ENDING_PROGRAM = """\
import atexit, sys

def at_exit():
    print("atexit ran")

def inner():
    {ending}

def outer():
    print("running")
    inner()

atexit.register(at_exit)
outer()
"""


@pytest.mark.parametrize("ending", ENDINGS)
def test_every_ending_is_python_s_and_leaves_a_complete_trace(ending: str, tmp_path: Path) -> None:
    write(tmp_path, "prog.py", ENDING_PROGRAM.format(ending=ENDINGS[ending] or "pass"))
    plain = python("prog.py", cwd=tmp_path)
    traced = ferrotrace(
        "trace", "-q", "--format", "chrome", "-o", "t.json", "prog.py", cwd=tmp_path
    )
    assert (traced.returncode, traced.stdout, traced.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    slices = [e for e in json.loads((tmp_path / "t.json").read_text())["traceEvents"]
              if e["ph"] == "X"]  # fmt: skip
    # Every call of the program, the atexit handler's included, each closed.
    assert Counter(e["name"] for e in slices) == {
        "<module>": 1,
        "outer": 1,
        "inner": 1,
        "at_exit": 1,
    }
    assert not any(e["args"].get("unfinished") for e in slices)


def test_summary_line_and_perfetto_default_name(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "def f():\n    pass\n\nf()\n")
    result = ferrotrace("trace", "--format", "perfetto", "prog.py", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == "ferrotrace: 4 events (2 calls) written to ferrotrace.pftrace\n"
    assert (tmp_path / "ferrotrace.pftrace").stat().st_size > 0


# --- output formats ---------------------------------------------------------------------------

SMALL = """\
def double(x):
    return int(x) * 2


def main():
    try:
        double("oops")
    except ValueError:
        pass
    return double(21)


main()
"""

SMALL_TEXT = """\
call      small.py:1 <module>
  line      small.py:1 <module>  def double(x):
  line      small.py:5 <module>  def main():
  line      small.py:13 <module>  main()
  call      small.py:5 main
    line      small.py:6 main  try:
    line      small.py:7 main  double("oops")
    call      small.py:1 double
      line      small.py:2 double  return int(x) * 2
      exception small.py:2 double  ValueError: invalid literal for int() with base 10: 'oops'
    unwind    small.py:2 double  ValueError: invalid literal for int() with base 10: 'oops'
    exception small.py:7 main  ValueError: invalid literal for int() with base 10: 'oops'
    line      small.py:8 main  except ValueError:
    line      small.py:9 main  pass
    line      small.py:10 main  return double(21)
    call      small.py:1 double
      line      small.py:2 double  return int(x) * 2
    return    small.py:2 double -> 42
  return    small.py:10 main -> 42
return    small.py:13 <module> -> None
"""


def test_text_output_is_exact(tmp_path: Path) -> None:
    write(tmp_path, "small.py", SMALL)
    result = ferrotrace("trace", "small.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == SMALL_TEXT
    only_double = ferrotrace("trace", "--function", "double", "--events", "call,return",
                             "small.py", cwd=tmp_path)  # fmt: skip
    assert only_double.stdout.splitlines() == [
        "call      small.py:1 double",
        "unwind    small.py:2 double  ValueError: invalid literal for int() with base 10: 'oops'",
        "call      small.py:1 double",
        "return    small.py:2 double -> 42",
    ]


def test_text_is_coloured_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    import pty

    write(tmp_path, "small.py", SMALL)

    def on_terminal(env: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        with subprocess.Popen(
            [sys.executable, "-m", "ferrotrace", "trace", "small.py"],
            cwd=tmp_path, stdout=follower, stderr=subprocess.DEVNULL, env=env,
        ) as process:  # fmt: skip
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert process.wait(timeout=60) == 0
        os.close(leader)
        return b"".join(chunks).decode()

    assert "\x1b[32mcall" in on_terminal(clean_env())
    assert "\x1b[" not in on_terminal(clean_env(NO_COLOR="1"))
    piped = ferrotrace("trace", "small.py", cwd=tmp_path)
    assert "\x1b[" not in piped.stdout
    forced = ferrotrace("trace", "--color", "always", "small.py", cwd=tmp_path)
    assert "\x1b[32mcall" in forced.stdout


THREADS = """\
import threading

def leaf(n):
    return n

def work(n):
    for i in range(n):
        leaf(i)

threads = [threading.Thread(target=work, args=(5,), name=f"worker-{i}") for i in range(3)]
for t in threads:
    t.start()
work(2)
for t in threads:
    t.join()
"""


def test_chrome_and_perfetto_per_thread(tmp_path: Path) -> None:
    from test_recorder import assert_properly_nested, decode, default_tracks, message, scalar

    write(tmp_path, "threads.py", THREADS)
    chrome = ferrotrace(
        "trace", "-q", "--format", "chrome", "-o", "t.json", "threads.py", cwd=tmp_path
    )
    assert chrome.returncode == 0, chrome.stderr
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    per_thread = Counter((names[e["tid"]], e["name"]) for e in slices)
    for i in range(3):
        assert per_thread[(f"worker-{i}", "work")] == 1
        assert per_thread[(f"worker-{i}", "leaf")] == 5
    assert per_thread[("MainThread", "leaf")] == 2
    # Before PEP 709 (3.12) the list comprehension runs as a function of its own.
    listcomp = 1 if sys.version_info < (3, 12) else 0
    assert per_thread[("MainThread", "<listcomp>")] == listcomp
    assert len(slices) == 1 + 1 + 2 + 3 * 6 + listcomp
    assert_properly_nested(slices)

    perfetto = ferrotrace("trace", "-q", "--format", "perfetto", "-o", "t.pftrace", "threads.py",
                          cwd=tmp_path)  # fmt: skip
    assert perfetto.returncode == 0, perfetto.stderr
    packets = [
        decode(p) for field, p in decode((tmp_path / "t.pftrace").read_bytes()) if field == 1
    ]
    tracks = {}
    for packet in packets:
        for descriptor in message(packet, 60):
            for thread in message(descriptor, 4):
                tracks[scalar(descriptor, 1)] = scalar(thread, 5).decode()
    assert sorted(tracks.values()) == ["MainThread", "worker-0", "worker-1", "worker-2"]
    defaults = default_tracks(packets)
    begins = Counter(
        tracks[scalar(event, 11) or defaults[scalar(packet, 10)]]
        for packet in packets
        for event in message(packet, 11)
        if scalar(event, 9) == 1
    )
    assert begins == {"MainThread": 4 + listcomp, "worker-0": 6, "worker-1": 6, "worker-2": 6}


# --- Perfetto, written while the program runs ------------------------------------------------

STREAMED_ENDING_PROGRAM = """\
import atexit, sys, threading

def leaf(n):
    return n

def gen(n):
    for i in range(n):
        yield i

def work(n):
    for i in range(n):
        leaf(i)
    return sum(gen(10))

def at_exit():
    work(10)

def inner():
    {ending}

def outer():
    worker = threading.Thread(target=work, args=(30_000,), name="worker")
    worker.start()
    work(60_000)
    worker.join()
    inner()

atexit.register(at_exit)
outer()
"""


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_streamed_perfetto_trace_is_complete_however_the_program_ends(
    ending: str, tmp_path: Path
) -> None:
    from test_recorder import read_perfetto

    source = STREAMED_ENDING_PROGRAM.format(ending=ENDINGS[ending] or "pass")
    write(tmp_path, "prog.py", source)
    plain = python("prog.py", cwd=tmp_path)
    traced = ferrotrace("trace", "--format", "perfetto", "-o", "t.pftrace", "prog.py", cwd=tmp_path)
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout)
    summary = "ferrotrace: 180100 events (90050 calls) written to t.pftrace\n"
    assert traced.stderr == plain.stderr + summary
    calls, unfinished = read_perfetto((tmp_path / "t.pftrace").read_bytes())
    # More than three chunks of events on the main thread, a generator's resumptions, the
    # atexit handler's calls: every call, each closed.
    assert calls == {
        ("MainThread", "<module>"): 1,
        ("MainThread", "outer"): 1,
        ("MainThread", "inner"): 1,
        ("MainThread", "at_exit"): 1,
        ("MainThread", "work"): 2,
        ("MainThread", "leaf"): 60_010,
        ("MainThread", "gen"): 2 * 11,
        ("worker", "work"): 1,
        ("worker", "leaf"): 30_000,
        ("worker", "gen"): 11,
    }
    assert unfinished == 0
    assert [p.name for p in tmp_path.iterdir()] == ["prog.py", "t.pftrace"]


FORKING = """\
import os, sys

def leaf(n):
    return n

def work(n):
    for i in range(n):
        leaf(i)

def child_work(n):
    for i in range(n):
        leaf(i)

work(1_000)
pid = os.fork()
if pid == 0:
    child_work(150_000)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child exit code", os.waitstatus_to_exitcode(status))
work(2_000)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
def test_a_forked_child_leaves_the_parent_s_trace_whole(tmp_path: Path, fmt: str) -> None:
    from test_recorder import read_perfetto

    write(tmp_path, "forking.py", FORKING)
    traced = ferrotrace("trace", "-q", "--format", fmt, "-o", "t.trace", "forking.py",
                        cwd=tmp_path)  # fmt: skip
    assert (traced.returncode, traced.stdout, traced.stderr) == (0, "child exit code 0\n", "")
    # The parent's calls only: the child recorded into its own memory and wrote nothing.
    if fmt == "perfetto":
        calls, unfinished = read_perfetto((tmp_path / "t.trace").read_bytes())
    else:
        events = json.loads((tmp_path / "t.trace").read_text())["traceEvents"]
        slices = [e for e in events if e.get("ph") == "X"]
        calls = Counter(("MainThread", e["name"]) for e in slices)
        assert {e["pid"] for e in slices} == {traced_pid(events)}
        unfinished = sum(bool(e.get("args", {}).get("unfinished")) for e in slices)
    assert calls == {
        ("MainThread", "<module>"): 1,
        ("MainThread", "work"): 2,
        ("MainThread", "leaf"): 3_000,
    }
    assert unfinished == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forking.py", "t.trace"]


def traced_pid(events: list[dict]) -> int:
    """The pid of the process the Chrome trace names."""
    names = [e for e in events if e.get("ph") == "M" and e.get("name") == "process_name"]
    assert len(names) == 1
    return names[0]["pid"]


def test_a_streamed_trace_that_cannot_be_finished_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "import shutil\n\nshutil.rmtree('out')\n")
    (tmp_path / "out").mkdir()
    traced = ferrotrace("trace", "--format", "perfetto", "-o", "out/t.pftrace", "prog.py",
                        cwd=tmp_path)  # fmt: skip
    assert traced.returncode == 0
    assert traced.stderr.startswith("ferrotrace trace: error: cannot write the trace: ")
    assert traced.stderr.count("\n") == 1 and "Traceback" not in traced.stderr
    assert not (tmp_path / "out").exists()
