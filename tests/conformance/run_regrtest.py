"""Run CPython's own test modules through ``test.libregrtest``, stock or on ferrotrace.

    python tests/conformance/run_regrtest.py [--ferrotrace] [--json FILE] MODULE... [-- ARGS]

Regrtest runs in this process, sequentially (no ``-j``), with ``-u all`` so that no test is
skipped for want of a resource, followed by any ARGS given after ``--``.

``--ferrotrace`` calls ``ferrotrace.install()`` before anything else is imported, and after the
run checks that install() is still in effect and that ferrotrace's trampoline dispatched events.
It also arranges for Python subprocesses to install ferrotrace (``child_site/sitecustomize.py``
via ``PYTHONPATH``) and records, through an audit hook, every subprocess launch together with
whether ferrotrace can be installed in it (``-I``/``-E``/``-S`` and replaced environments keep
it out). A stock run (no flag) changes nothing in the environment; both modes record test
outcomes and subprocess launches the same way, so the two runs differ only by ferrotrace.

Outcomes are recorded by wrapping the methods of regrtest's own result class
(``test.libregrtest.testresult.RegressionTestResult``): unlike ``--junit-xml``, this also sees
failing subtests. The summary is JSON: written to ``--json FILE`` and printed as the last line.
Exit status: 0 if the run completed (whatever its test results) and, with ``--ferrotrace``, the
checks above held; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD_SITE = os.path.join(HERE, "child_site")
INSTALL_ENV = "FERROTRACE_CONFORMANCE_INSTALL"
LOG_ENV = "FERROTRACE_CONFORMANCE_LOG"
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

    def __init__(self, ferrotrace: bool) -> None:
        self.ferrotrace = ferrotrace
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
        launch["python"] = _is_python(program)
        if self.ferrotrace and launch["python"]:
            launch["why_not"] = _why_not_installable(argv, env)
            launch["ferrotrace"] = launch["why_not"] is None
        self.launches.append(launch)


def _is_python(program: str) -> bool:
    if os.path.realpath(program) == os.path.realpath(sys.executable):
        return True
    name = os.path.basename(program)
    return name.startswith("python") and name[6:].replace(".", "").isdigit()


def _why_not_installable(argv: list[str], env) -> str | None:
    """Why ferrotrace cannot be installed in this Python child, or None if it will be."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-X", "-W"):
            i += 2
            continue
        if arg in ("-c", "-m", "-") or not arg.startswith("-") or arg.startswith("--"):
            break
        if not arg.startswith(("-X", "-W")):
            letters = arg[1:]
            for flag, why in (
                ("I", "isolated mode (-I): PYTHONPATH and the environment are ignored"),
                ("E", "-E: PYTHONPATH and the environment are ignored"),
                ("S", "-S: the site module (and so sitecustomize) is not imported"),
            ):
                if flag in letters:
                    return why
        i += 1
    if env is not None:
        if env.get(INSTALL_ENV) != "1" and env.get(INSTALL_ENV.encode()) != b"1":
            return f"the test passes its own environment, without {INSTALL_ENV}"
        path = env.get("PYTHONPATH") or os.fsdecode(env.get(b"PYTHONPATH", b""))
        if CHILD_SITE not in path.split(os.pathsep):
            return "the test passes its own environment, without our PYTHONPATH entry"
    return None


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
    parser.add_argument("--json", metavar="FILE", help="also write the JSON summary here")
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="e.g. test_pdb")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    args = parser.parse_args(argv)

    log_dir = None
    if args.ferrotrace:
        # Before regrtest (or anything that might bind sys.settrace early) is imported.
        import ferrotrace
        from ferrotrace import _native

        ferrotrace.install()
        log_dir = tempfile.TemporaryDirectory(prefix="ferrotrace-conformance-")
        os.environ[INSTALL_ENV] = "1"
        os.environ[LOG_ENV] = os.path.join(log_dir.name, "children.jsonl")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (CHILD_SITE, os.environ.get("PYTHONPATH")) if p
        )

    recorder = Recorder(args.ferrotrace)
    sys.addaudithook(recorder.audit)
    recorder.attach()

    from test.libregrtest.cmdline import _parse_args
    from test.libregrtest.main import Regrtest

    regrtest_argv = [*DEFAULT_REGRTEST_ARGS, *extra, *args.modules]
    regrtest = Regrtest(_parse_args(regrtest_argv))
    start = time.perf_counter()
    try:
        regrtest.main()
    except SystemExit as exc:
        exitcode = exc.code
    else:  # pragma: no cover - Regrtest.main() always exits
        exitcode = None
    duration = time.perf_counter() - start

    summary = {
        "python": sys.version,
        "version_key": f"py{sys.version_info.major}{sys.version_info.minor}",
        "mode": "ferrotrace" if args.ferrotrace else "stock",
        "regrtest_args": regrtest_argv,
        "regrtest_exitcode": exitcode,
        "duration": round(duration, 3),
        **summarize(recorder, args.modules, getattr(regrtest, "results", None)),
        "subprocesses": recorder.launches,
        "ferrotrace": None,
    }
    ok = exitcode is not None
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
