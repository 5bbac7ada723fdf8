import sys

from commproc_core.cli import main

sys.exit(main())
