import sys

from ferrotrace.cli import main

sys.exit(main())
