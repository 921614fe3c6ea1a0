"""``ferrotrace debug``: ``python -m pdb`` on ferrotrace's debugger.

    ferrotrace debug [-c COMMAND] (script.py | -m module) [args...]

Same options and behaviour as ``python -m pdb``: ``.pdbrc`` files and ``-c`` commands run
first, the program restarts when it ends, an uncaught exception enters post-mortem debugging.
Example: ``ferrotrace debug -c 'b app.py:42' -c c app.py --verbose``.
"""

from __future__ import annotations

SUMMARY = "run a program under pdb with native breakpoints"


def main(argv: list[str]) -> int:
    from ferrotrace.debugger import main as debug_main

    debug_main(argv, prog="ferrotrace debug")
    return 0
