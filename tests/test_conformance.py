"""CPython's own suites, stock and on ferrotrace, give the same results.

For each module, ``tests/conformance/run_regrtest.py`` runs it through ``test.libregrtest`` on
this interpreter twice, in fresh processes: stock, then with ``ferrotrace.install()`` done
first; test_bdb and test_pdb also a third time, with ``ferrotrace.debugger.install()`` too
(the debugger mode: bdb.Bdb and pdb.Pdb are ferrotrace's native-core classes), compared with
the stock run the same way. The runs must have run the same tests with the same outcomes,
except for what ``tests/conformance/expected_differences.toml`` lists for this interpreter
(see its header), and the ferrotrace run must really have run on ferrotrace, its Python
subprocesses included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).parent / "conformance"
RUNNER = CONFORMANCE / "run_regrtest.py"
EXPECTED = CONFORMANCE / "expected_differences.toml"
MODULES = ["test_sys_settrace", "test_bdb", "test_pdb", "test_trace"]
# The debugger's drop-in (ferrotrace.debugger.install(): bdb.Bdb and pdb.Pdb are ferrotrace's).
DEBUGGER_MODULES = ["test_bdb", "test_pdb"]
RUNS = [(m, "ferrotrace") for m in MODULES] + [(m, "debugger") for m in DEBUGGER_MODULES]
VERSION_KEY = f"py{sys.version_info.major}{sys.version_info.minor}"
RUN_TIMEOUT = 420  # seconds, per regrtest run; a module takes seconds when all is well
OUTCOMES = {"passed", "failed", "error", "skipped", "expected_failure", "unexpected_success"}


def _expected(module: str, mode: str = "ferrotrace") -> dict[str, dict[str, dict]]:
    """This interpreter's entries of the expected-differences file, for ``module``, by kind
    ("differences", "bypassed", "uncovered") and then by test id. In the debugger mode the
    differences are those of the "debugger_differences" tables."""
    with EXPECTED.open("rb") as f:
        data = tomllib.load(f).get(VERSION_KEY, {})
    unknown = set(data) - {"differences", "debugger_differences", "bypassed", "uncovered"}
    assert not unknown, f"{EXPECTED.name}: unknown tables {VERSION_KEY}.{sorted(unknown)}"
    prefix = f"test.{module}."
    result: dict[str, dict[str, dict]] = {}
    tables = {"differences": "debugger_differences" if mode == "debugger" else "differences"}
    for kind in ("differences", "bypassed", "uncovered"):
        result[kind] = {}
        for entry in data.get(tables.get(kind, kind), []):
            assert entry.get("reason", "").strip(), f"{kind} entry without a reason: {entry}"
            if kind == "differences":
                assert {entry.get("stock"), entry.get("ferrotrace")} <= OUTCOMES, entry
                assert entry["stock"] != entry["ferrotrace"], entry
            for test_id in entry["tests"]:
                if test_id.startswith(prefix):
                    assert test_id not in result[kind], f"{test_id} listed twice in {kind}"
                    result[kind][test_id] = entry
    return result


def _run(module: str, mode: str, json_path: Path) -> dict:
    cmd = [sys.executable, str(RUNNER), "--json", str(json_path), module]
    if mode != "stock":
        cmd.insert(2, f"--{mode}")
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("FERROTRACE_CONFORMANCE")},
    )
    if not json_path.exists():
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode} without a summary\n"
            f"--- stdout (tail)\n{proc.stdout[-6000:]}\n--- stderr (tail)\n{proc.stderr[-6000:]}"
        )
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    summary["_output"] = proc.stdout[-6000:] + proc.stderr[-6000:]
    summary["_returncode"] = proc.returncode
    return summary


def _outcomes(entry: dict) -> dict[str, str]:
    """Test id -> outcome, for every test (and failing subtest) the run reported."""
    result = dict.fromkeys(entry["run"], "passed")
    for key, outcome in (
        ("skipped_ids", "skipped"),
        ("expected_failure_ids", "expected_failure"),
        ("unexpected_success_ids", "unexpected_success"),
        ("failed", "failed"),
        ("errored", "error"),  # an error outranks a failure of the same test
    ):
        for test_id in entry[key]:
            result[test_id] = outcome
    return result


def _counts(entry: dict) -> str:
    keys = ("tests_run", "failures", "errors", "skipped", "expected_failures")
    return ", ".join(f"{k}={entry[k]}" for k in keys) + f" [{entry['state']}]"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("module", "mode"), RUNS)
def test_cpython_suite_conforms(module: str, mode: str, tmp_path: Path) -> None:
    expected = _expected(module, mode)
    stock = _run(module, "stock", tmp_path / "stock.json")
    ferro = _run(module, mode, tmp_path / f"{mode}.json")
    s, f = stock["modules"][module], ferro["modules"][module]
    header = (
        f"{module} on {VERSION_KEY}: stock {_counts(s)} in {stock['duration']}s; "
        f"{mode} {_counts(f)} in {ferro['duration']}s"
    )
    print(header)

    # Both runs completed and ran tests.
    for summary in (stock, ferro):
        assert summary["regrtest_exitcode"] is not None, summary["_output"]
        assert summary["modules"][module]["tests_run"] > 0, f"{header}\n{summary['_output']}"
        assert all("error" not in p for p in summary["subprocesses"]), summary["subprocesses"]

    # The children's hook (a .pth file in this interpreter's site-packages) was there for the
    # whole ferrotrace run, at every subprocess launch, and never during the stock run; and
    # neither run left it behind.
    for summary, present in ((stock, False), (ferro, True)):
        hook = summary["child_hook"]
        assert Path(hook["pth"]).parent == Path(sysconfig.get_paths()["purelib"]), hook
        assert hook["present_before_run"] is present, f"{summary['mode']} run: {hook}"
        assert hook["present_after_run"] is present, f"{summary['mode']} run: {hook}"
        assert not hook["left_behind"] and not Path(hook["pth"]).exists(), hook
        launches = summary["subprocesses"]
        wrong = [p["argv"] for p in launches if p["hook_file_present"] is not present]
        assert not wrong, f"{summary['mode']} run: hook file present is not {present} for {wrong}"
    assert stock["_returncode"] == 0, stock["_output"]

    # The ferrotrace run ran on ferrotrace, and install() was still in effect at its end.
    fsum = ferro["ferrotrace"]
    assert fsum["installed_at_end"], f"{header}: install() no longer in effect after the run"
    assert fsum["dispatch_count"] > 0, f"{header}: ferrotrace's trampoline dispatched nothing"
    assert ferro["_returncode"] == 0, ferro["_output"]
    if mode == "debugger":
        # bdb.Bdb and pdb.Pdb were ferrotrace's to the end and events went through their core;
        # pdb's sessions let it decide (test_bdb's tracers all override trace_dispatch, so
        # there the core hands every event to their Python).
        dsum = ferro["debugger"]
        assert dsum["installed_at_end"], f"{header}: debugger install() no longer in effect"
        assert dsum["core_events"] > 0, f"{header}: no event went through the debugger core"
        if module == "test_pdb":
            assert dsum["native_decisions"] > 0, f"{header}: the debugger core decided nothing"
        print(f"{module} on {VERSION_KEY}, debugger core: {dsum}")

    # The same tests ran.
    assert set(s["run"]) == set(f["run"]), (
        f"{header}\nonly stock: {sorted(set(s['run']) - set(f['run']))}\n"
        f"only ferrotrace: {sorted(set(f['run']) - set(s['run']))}"
    )
    assert stock["unattributed"] == ferro["unattributed"]

    # With the same outcomes, but for the listed differences (which must still differ).
    so, fo = _outcomes(s), _outcomes(f)
    problems = []
    for test_id in sorted(set(so) | set(fo)):
        got = (so.get(test_id, "absent"), fo.get(test_id, "absent"))
        listed = expected["differences"].get(test_id)
        want = (listed["stock"], listed["ferrotrace"]) if listed else (got[0], got[0])
        if got != want:
            detail = f.get("details", {}).get(test_id) or s.get("details", {}).get(test_id, "")
            problems.append(
                f"{test_id}: stock {got[0]}, ferrotrace {got[1]}"
                + (f" (listed as {want[0]} -> {want[1]})" if listed else "")
                + (f"\n{detail}" if detail else "")
            )
    for test_id in sorted(set(expected["differences"]) - set(so) - set(fo)):
        problems.append(f"{test_id}: listed in differences but not run")
    assert not problems, f"{header}\n" + "\n".join(problems)
    if not expected["differences"]:
        assert s["state"] == f["state"], f"{header}\n{ferro['_output']}"

    # Listed bypassed/uncovered tests exist.
    for kind in ("bypassed", "uncovered"):
        stale = sorted(set(expected[kind]) - set(s["run"]))
        assert not stale, f"{EXPECTED.name}: {VERSION_KEY}.{kind} lists tests not run: {stale}"

    # Subprocesses: exactly the listed tests start Python children ferrotrace is not installed
    # in; every other Python child reported ferrotrace installed at its exit.
    python_children = [p for p in ferro["subprocesses"] if p["python"]]
    uncovered = {p["test"] for p in python_children if not p["ferrotrace"]}
    assert uncovered == set(expected["uncovered"]), (
        f"{header}: tests with Python subprocesses that do not run ferrotrace\n"
        f"  not listed in {EXPECTED.name}: "
        + repr(sorted({(p["test"], p["why_not"]) for p in python_children if not p["ferrotrace"]}))
        + f"\n  listed but not observed: {sorted(set(expected['uncovered']) - uncovered)}"
    )
    covered = [p for p in python_children if p["ferrotrace"]]
    unreported = [p for p in covered if not (p["child"] or {}).get("installed")]
    assert not unreported, f"{header}: children without ferrotrace installed: {unreported}"
    if covered:
        assert sum(p["child"]["dispatch_count"] for p in covered) > 0, covered
    print(
        f"{module} on {VERSION_KEY}: {len(ferro['subprocesses'])} subprocesses "
        f"({len(python_children)} Python, from {len({p['test'] for p in python_children})} "
        f"tests): {len(covered)} on ferrotrace, of which "
        f"{sum(p['child']['dispatch_count'] > 0 for p in covered)} dispatched trace events; "
        f"{len(python_children) - len(covered)} not on ferrotrace"
    )
