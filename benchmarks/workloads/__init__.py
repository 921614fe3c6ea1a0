"""CPU workloads for the overhead benchmark.

Every module here defines ``run()``: a fixed, deterministic amount of work that returns a
checksum. A tracer must not change behaviour, so the runner checks that the checksum is the
same with and without a trace function.

``run()`` also takes an optional ``scale`` (default ``1.0``): about that fraction of the work,
for the instruction counts of ``instructions.py``, which run under valgrind (some 50 times
slower). Scaled-down runs have checksums of their own; ``run()`` with no argument is what
``run.py`` times.
"""
