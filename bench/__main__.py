"""`python -m bench` (what `make bench` runs): see bench/suite.py."""

import sys

from bench.suite import main

sys.exit(main())
