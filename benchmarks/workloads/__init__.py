"""CPU workloads for the overhead benchmark.

Every module here defines ``run()``: a fixed, deterministic amount of work that returns a
checksum. A tracer must not change behaviour, so the runner checks that the checksum is the
same with and without a trace function.
"""
