"""`python -m study.report` (the command line itself: study.cli)."""

import sys

from study.cli import report_main

sys.exit(report_main())
