"""Run one workload as a program: ``python workload_main.py NAME``.

What whole_process.py runs, plainly and under each recorder; prints the checksum so that a
tool which changes the program's behaviour is caught.
"""

import importlib
import sys
from pathlib import Path

if __name__ == "__main__":
    # Not every runner puts the script's directory first on sys.path as python does (trace0's
    # `run` does not), so the workloads package is found explicitly.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    workload = importlib.import_module(f"workloads.{sys.argv[1]}")
    print(f"checksum: {workload.run()!r}")
