"""``python -m ferrotrace.debugger``: ``python -m pdb`` on ferrotrace's debugger."""

import sys

from ferrotrace.debugger import main

if __name__ == "__main__":
    main(sys.argv[1:], prog="python -m ferrotrace.debugger")
