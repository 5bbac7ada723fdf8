import sys

from commproc_core.runtime.cli import main

sys.exit(main())
