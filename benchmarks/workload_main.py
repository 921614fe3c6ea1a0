"""Run one workload as a program: ``python workload_main.py NAME``.

What whole_process.py runs, plainly and under each recorder; prints the checksum so that a
tool which changes the program's behaviour is caught.
"""

import importlib
import sys

if __name__ == "__main__":
    workload = importlib.import_module(f"workloads.{sys.argv[1]}")
    print(f"checksum: {workload.run()!r}")
