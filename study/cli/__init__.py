"""The command lines and the Python API: `python -m study.run` (`main`), `python -m study.report`
(`report_main`), `from study import run_study, run_protocol`; and the one orchestrator they call
(search -> worker processes -> final stage -> publish), which alone imports study.report.

Importing it is cheap: the orchestrator, and TensorFlow with it, load when a run starts.

Example:
    >>> parse_args(["--dataset", "synthetic", "--epochs", "3"]).epochs
    3
"""

from study.cli._api import make_config, run_protocol, run_study
from study.cli._protocol import PROTOCOL, protocol_configs
from study.cli._report import main as report_main
from study.cli._run import build_parser, main, parse_args

__all__ = ["PROTOCOL", "build_parser", "main", "make_config", "parse_args", "protocol_configs", "report_main", "run_protocol",
           "run_study"]
