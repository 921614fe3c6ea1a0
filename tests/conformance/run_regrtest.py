"""Run CPython's own test modules through ``test.libregrtest``, stock or on ferrotrace.

    python tests/conformance/run_regrtest.py [--ferrotrace | --debugger] [--json FILE] \
        MODULE... [-- ARGS]

Regrtest runs in this process, sequentially (no ``-j``), with ``-u all`` so that no test is
skipped for want of a resource, followed by any ARGS given after ``--``.

``--debugger`` does that and also ``ferrotrace.debugger.install()`` (``bdb.Bdb`` and ``pdb.Pdb``
become ferrotrace's native-core classes), in the run's Python subprocesses too.

``--ferrotrace`` calls ``ferrotrace.install()`` before anything else is imported, and after the
run checks that install() is still in effect and that ferrotrace's trampoline dispatched events.
It also installs ferrotrace in the run's Python subprocesses: right before regrtest runs, it
puts ``ferrotrace_conformance.pth`` and ``ferrotrace_conformance_child.py`` (a copy of the file
next to this one) into this interpreter's site-packages, and removes both right after, in a
``finally``. The site module runs the .pth's ``import`` line at every startup, isolated mode
(``-I``) and ``-E`` included, and the imported module installs ferrotrace only when
``FERROTRACE_CONFORMANCE_INSTALL=1``, which only this mode sets (in ``os.environ``, inherited by
children); each child then reports at exit whether ferrotrace was still installed. Files that
an interrupted run left behind are removed first (by either mode); while a run that is still
alive owns them, any other run on this interpreter refuses to start.

Both modes record, through an audit hook, every subprocess launch: whether the .pth file was
present at that moment and, in the ferrotrace run, for a Python child, whether ferrotrace will
be installed in it (``-S``, another interpreter or an environment without the variable keep it
out). A stock run changes nothing in the environment, writes nothing into site-packages, and
checks that the .pth file is absent before and after its regrtest run and at every launch; so
the two runs differ only by ferrotrace.

Outcomes are recorded by wrapping the methods of regrtest's own result class
(``test.libregrtest.testresult.RegressionTestResult``): unlike ``--junit-xml``, this also sees
failing subtests. The summary is JSON: written to ``--json FILE`` and printed as the last line.
Exit status: 0 if the run completed (whatever its test results) and the checks above held; 1
otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_MODULE = "ferrotrace_conformance_child"
HOOK_SOURCE = os.path.join(HERE, f"{HOOK_MODULE}.py")
HOOK_PTH = "ferrotrace_conformance.pth"
HOOK_MARKER = "# Written by ferrotrace's tests/conformance/run_regrtest.py"
INSTALL_ENV = "FERROTRACE_CONFORMANCE_INSTALL"
LOG_ENV = "FERROTRACE_CONFORMANCE_LOG"
DEBUGGER_ENV = "FERROTRACE_CONFORMANCE_DEBUGGER"
DEFAULT_REGRTEST_ARGS = ["-u", "all"]
DETAIL_LIMIT = 8000

OUTCOME_KEYS = {
    "failure": "failed",
    "error": "errored",
    "skipped": "skipped_ids",
    "expected_failure": "expected_failure_ids",
    "unexpected_success": "unexpected_success_ids",
}


def _test_id(test) -> str:
    try:
        return str(test.id())
    except Exception:
        return str(test)


class Recorder:
    """Test outcomes (from regrtest's result class) and subprocess launches (audit hook)."""

    def __init__(self, ferrotrace: bool, pth: str) -> None:
        self.ferrotrace = ferrotrace
        self.pth = pth
        self.started: list[str] = []
        self.outcomes: dict[str, list[str]] = {}
        self.details: dict[str, str] = {}
        self.current: str | None = None
        self.launches: list[dict] = []

    def _add(self, result, test_id: str, outcome: str, err=None) -> None:
        self.outcomes.setdefault(test_id, []).append(outcome)
        if err is not None:
            try:
                text = result._exc_info_to_string(err, None)
            except Exception:
                import traceback

                text = "".join(traceback.format_exception(*err))
            self.details[test_id] = (self.details.get(test_id, "") + text)[-DETAIL_LIMIT:]

    def attach(self) -> None:
        from test.libregrtest.testresult import RegressionTestResult as cls

        rec = self
        orig = {
            name: getattr(cls, name)
            for name in (
                "startTest",
                "stopTest",
                "addSuccess",
                "addFailure",
                "addError",
                "addSkip",
                "addExpectedFailure",
                "addUnexpectedSuccess",
                "addSubTest",
            )
        }

        def startTest(self, test):
            rec.current = _test_id(test)
            rec.started.append(rec.current)
            return orig["startTest"](self, test)

        def stopTest(self, test):
            rec.current = None
            return orig["stopTest"](self, test)

        def addSuccess(self, test):
            rec._add(self, _test_id(test), "success")
            return orig["addSuccess"](self, test)

        def addFailure(self, test, err):
            rec._add(self, _test_id(test), "failure", err)
            return orig["addFailure"](self, test, err)

        def addError(self, test, err):
            rec._add(self, _test_id(test), "error", err)
            return orig["addError"](self, test, err)

        def addSkip(self, test, reason):
            rec._add(self, _test_id(test), "skipped")
            rec.details[_test_id(test)] = str(reason)
            return orig["addSkip"](self, test, reason)

        def addExpectedFailure(self, test, err):
            rec._add(self, _test_id(test), "expected_failure")
            return orig["addExpectedFailure"](self, test, err)

        def addUnexpectedSuccess(self, test):
            rec._add(self, _test_id(test), "unexpected_success")
            return orig["addUnexpectedSuccess"](self, test)

        def addSubTest(self, test, subtest, err):
            if err is not None:
                kind = "failure" if issubclass(err[0], test.failureException) else "error"
                rec._add(self, _test_id(subtest), kind, err)
            return orig["addSubTest"](self, test, subtest, err)

        for func in (
            startTest,
            stopTest,
            addSuccess,
            addFailure,
            addError,
            addSkip,
            addExpectedFailure,
            addUnexpectedSuccess,
            addSubTest,
        ):
            setattr(cls, func.__name__, func)

    def audit(self, event: str, args: tuple) -> None:
        if event != "subprocess.Popen":
            return
        try:
            self._record_launch(*args)
        except Exception as exc:  # an audit hook must never break the code it observes
            self.launches.append({"test": self.current, "error": repr(exc)})

    def _record_launch(self, executable, args, cwd, env) -> None:
        if isinstance(args, (str, bytes, os.PathLike)):
            argv = [os.fsdecode(args)]
        else:
            argv = [os.fsdecode(a) for a in args]
        program = os.fsdecode(executable) if executable is not None else argv[0]
        launch: dict = {"test": self.current, "argv": argv}
        launch["hook_file_present"] = os.path.exists(self.pth)
        launch["python"] = _is_python(program)
        if self.ferrotrace and launch["python"]:
            launch["why_not"] = _why_not_installable(program, argv, env)
            launch["ferrotrace"] = launch["why_not"] is None
        self.launches.append(launch)


def _is_python(program: str) -> bool:
    if os.path.realpath(program) == os.path.realpath(sys.executable):
        return True
    name = os.path.basename(program)
    return name.startswith("python") and name[6:].replace(".", "").isdigit()


def _why_not_installable(program: str, argv: list[str], env) -> str | None:
    """Why ferrotrace will not be installed in this Python child, or None if it will be."""
    if not os.path.dirname(program):
        path = None if env is None else env.get("PATH") or os.fsdecode(env.get(b"PATH", b""))
        program = shutil.which(program, path=path) or program
    if os.path.dirname(os.path.abspath(program)) != os.path.dirname(sys.executable):
        return f"{program} is not {sys.executable}: its site-packages has no {HOOK_PTH}"
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-X", "-W"):
            i += 2
            continue
        if arg in ("-c", "-m", "-") or not arg.startswith("-") or arg.startswith("--"):
            break
        if not arg.startswith(("-X", "-W")) and "S" in arg[1:]:
            return f"-S: the site module is not imported, so neither is {HOOK_PTH}"
        i += 1
    if env is not None and env.get(INSTALL_ENV) != "1" and env.get(INSTALL_ENV.encode()) != b"1":
        return f"the test passes its own environment, without {INSTALL_ENV}=1"
    return None


def _hook_paths() -> tuple[str, str]:
    """The .pth file and the module it imports, in this interpreter's site-packages."""
    site_packages = sysconfig.get_paths()["purelib"]
    return os.path.join(site_packages, HOOK_PTH), os.path.join(site_packages, f"{HOOK_MODULE}.py")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_hook_module(module: str) -> None:
    pycache = os.path.join(os.path.dirname(module), "__pycache__")
    for path in (module, *glob.glob(os.path.join(pycache, f"{HOOK_MODULE}.*.pyc"))):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _clear_stale_hook(pth: str, module: str) -> None:
    """Remove the hook files of an interrupted run; refuse if a live run owns them."""
    try:
        with open(pth, encoding="utf-8") as f:
            first_line = f.readline()
    except FileNotFoundError:
        return
    match = re.match(re.escape(HOOK_MARKER) + r" \(pid (\d+)\)", first_line)
    if match is None:
        raise RuntimeError(f"{pth} exists but was not written by {__file__}; not touching it")
    pid = int(match.group(1))
    if _pid_alive(pid):
        raise RuntimeError(
            f"{pth} belongs to a run that is still going (pid {pid}): only one conformance "
            "run at a time per interpreter"
        )
    os.remove(pth)
    _remove_hook_module(module)


def _install_hook(pth: str, module: str) -> None:
    """Put the hook module, then the .pth file importing it, into site-packages."""
    assert os.path.dirname(pth) in sys.path, (pth, sys.path)
    shutil.copyfile(HOOK_SOURCE, module)
    # Exclusively: a .pth file that appeared since _clear_stale_hook() is another run's.
    try:
        fd = os.open(pth, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise
    except OSError:
        _remove_hook_module(module)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(
            f"{HOOK_MARKER} (pid {os.getpid()}) for the length of one run, and removed by it.\n"
            f"# {HOOK_MODULE} does nothing unless {INSTALL_ENV}=1; safe to delete.\n"
            f"import {HOOK_MODULE}\n"
        )


def _remove_hook(pth: str, module: str) -> None:
    """Remove the .pth file first, so that it never imports a missing module."""
    try:
        os.remove(pth)
    except FileNotFoundError:
        pass
    _remove_hook_module(module)


def _module_of(test_id: str, modules: list[str]) -> str | None:
    for module in modules:
        name = module.removeprefix("test.")
        if f"test.{name}." in test_id or f"test.{name})" in test_id or test_id == f"test.{name}":
            return name
    return None


def _module_state(results, name: str) -> str:
    for attr, state in (
        ("bad", "FAILED"),
        ("env_changed", "ENV_CHANGED"),
        ("resource_denied", "RESOURCE_DENIED"),
        ("skipped", "SKIPPED"),
        ("run_no_tests", "NO_TESTS_RUN"),
        ("good", "PASSED"),
    ):
        names = {n.removeprefix("test.") for n in getattr(results, attr, ())}
        if name in names:
            return state
    return "NOT_RUN"


def _read_child_log(path: str | None) -> list[dict]:
    import json

    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _match_children(launches: list[dict], children: list[dict]) -> None:
    """Attach to each installable launch the report of the child with the same argv."""
    pool = list(children)
    for launch in launches:
        if not launch.get("ferrotrace"):
            continue
        for child in pool:
            if child["argv"] == launch["argv"]:
                launch["child"] = {k: child[k] for k in ("installed", "dispatch_count")}
                pool.remove(child)
                break
        else:
            launch["child"] = None


def summarize(recorder: Recorder, modules: list[str], results) -> dict:
    per_module: dict[str, dict] = {}
    for module in modules:
        name = module.removeprefix("test.")
        per_module[name] = {
            "state": _module_state(results, name) if results is not None else "NOT_RUN",
            "run": [],
            "failed": [],
            "errored": [],
            "skipped_ids": [],
            "expected_failure_ids": [],
            "unexpected_success_ids": [],
            "details": {},
        }
    unattributed: list[str] = []
    for test_id in recorder.started:
        name = _module_of(test_id, modules)
        if name is None:
            unattributed.append(test_id)
        else:
            per_module[name]["run"].append(test_id)
    for test_id, outcomes in recorder.outcomes.items():
        name = _module_of(test_id, modules)
        if name is None:
            if any(o in ("failure", "error") for o in outcomes):
                unattributed.append(test_id)
            continue
        entry = per_module[name]
        for outcome in dict.fromkeys(outcomes):
            key = OUTCOME_KEYS.get(outcome)
            if key is not None:
                entry[key].append(test_id)
        if test_id in recorder.details and any(o != "success" for o in outcomes):
            entry["details"][test_id] = recorder.details[test_id]
    for entry in per_module.values():
        for key in ("run", *OUTCOME_KEYS.values()):
            entry[key] = sorted(set(entry[key]))
        entry["tests_run"] = len(entry["run"])
        entry["failures"] = len(entry["failed"])
        entry["errors"] = len(entry["errored"])
        entry["skipped"] = len(entry["skipped_ids"])
        entry["expected_failures"] = len(entry["expected_failure_ids"])
        entry["unexpected_successes"] = len(entry["unexpected_success_ids"])
        entry["details"] = dict(sorted(entry["details"].items()))
    stats = getattr(results, "stats", None)
    return {
        "modules": per_module,
        "unattributed": sorted(set(unattributed)),
        "regrtest_stats": None
        if stats is None
        else {
            "tests_run": stats.tests_run,
            "failures": stats.failures,
            "skipped": stats.skipped,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ferrotrace", action="store_true", help="ferrotrace.install() first")
    parser.add_argument(
        "--debugger",
        action="store_true",
        help="also ferrotrace.debugger.install() first (bdb.Bdb and pdb.Pdb are ferrotrace's)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the JSON summary here")
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="e.g. test_pdb")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    args = parser.parse_args(argv)
    args.ferrotrace = args.ferrotrace or args.debugger

    # Leftovers of an interrupted run go in either mode, before anything runs.
    pth, module = _hook_paths()
    _clear_stale_hook(pth, module)
    log_dir = None
    if args.ferrotrace:
        # Before regrtest (or anything that might bind sys.settrace early) is imported.
        import ferrotrace
        from ferrotrace import _native

        ferrotrace.install()
        if args.debugger:
            import ferrotrace.debugger

            ferrotrace.debugger.install()
            os.environ[DEBUGGER_ENV] = "1"
        log_dir = tempfile.TemporaryDirectory(prefix="ferrotrace-conformance-")
        os.environ[INSTALL_ENV] = "1"
        os.environ[LOG_ENV] = os.path.join(log_dir.name, "children.jsonl")
    elif {INSTALL_ENV, LOG_ENV, DEBUGGER_ENV} & set(os.environ):
        parser.error(
            f"a stock run needs an environment without {INSTALL_ENV}, {LOG_ENV}, {DEBUGGER_ENV}"
        )

    recorder = Recorder(args.ferrotrace, pth)
    sys.addaudithook(recorder.audit)
    recorder.attach()

    from test.libregrtest.cmdline import _parse_args
    from test.libregrtest.main import Regrtest

    regrtest_argv = [*DEFAULT_REGRTEST_ARGS, *extra, *args.modules]
    regrtest = Regrtest(_parse_args(regrtest_argv))
    hook: dict[str, object] = {"pth": pth}
    exitcode = None
    installed_hook = False
    start = time.perf_counter()
    try:
        if args.ferrotrace:
            _install_hook(pth, module)
            installed_hook = True
        hook["present_before_run"] = os.path.exists(pth)
        try:
            regrtest.main()
        except SystemExit as exc:
            exitcode = exc.code
        hook["present_after_run"] = os.path.exists(pth)
    finally:
        if installed_hook:
            _remove_hook(pth, module)
    duration = time.perf_counter() - start
    hook["left_behind"] = os.path.exists(pth) or os.path.exists(module)

    summary = {
        "python": sys.version,
        "version_key": f"py{sys.version_info.major}{sys.version_info.minor}",
        "mode": "debugger" if args.debugger else "ferrotrace" if args.ferrotrace else "stock",
        "regrtest_args": regrtest_argv,
        "regrtest_exitcode": exitcode,
        "duration": round(duration, 3),
        **summarize(recorder, args.modules, getattr(regrtest, "results", None)),
        "subprocesses": recorder.launches,
        "child_hook": hook,
        "ferrotrace": None,
        "debugger": None,
    }
    # The .pth file was there for the whole ferrotrace run, and never during a stock run.
    ok = (
        exitcode is not None
        and hook["present_before_run"] is args.ferrotrace
        and hook["present_after_run"] is args.ferrotrace
        and not hook["left_behind"]
        and all(p.get("hook_file_present") is args.ferrotrace for p in recorder.launches)
    )
    if args.ferrotrace:
        children = _read_child_log(os.environ[LOG_ENV])
        _match_children(recorder.launches, children)
        installed = (
            ferrotrace.is_installed()
            and sys.settrace is ferrotrace.settrace
            and sys.gettrace is ferrotrace.gettrace
        )
        dispatch_count = _native._dispatch_count()
        summary["ferrotrace"] = {
            "installed_at_end": installed,
            "dispatch_count": dispatch_count,
            "children": children,
        }
        ok = ok and installed and dispatch_count > 0
        if args.debugger:
            import bdb
            import pdb

            debugger_installed = (
                ferrotrace.debugger.is_installed()
                and bdb.Bdb is ferrotrace.debugger.Bdb
                and pdb.Pdb is ferrotrace.debugger.Pdb
            )
            core_events, native_decisions = _native._debugger_event_counts()
            summary["debugger"] = {
                "installed_at_end": debugger_installed,
                "core_events": core_events,
                "native_decisions": native_decisions,
            }
            ok = ok and debugger_installed
        log_dir.cleanup()

    import json

    text = json.dumps(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.flush()
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
