"""`python -m study.run`: the command line (study.cli). `main(argv)` returns the exit code.

Example:
    python -m study.run --dataset synthetic --weights none --image-size 32 --epochs 5
"""

import sys

from study.cli import build_parser, main, parse_args

__all__ = ["build_parser", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
