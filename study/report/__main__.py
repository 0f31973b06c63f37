"""`python -m study.report` (see study.report.cli)."""

import sys

from study.report.cli import main

sys.exit(main())
