"""`python -m bench`: every benchmark side by side with its peer (see bench/run.py)."""

import sys

from bench.run import main

sys.exit(main())
