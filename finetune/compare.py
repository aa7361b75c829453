"""The comparison, pretrained against scratch: the grid of runs (`grid`), a sweep's runs gathered (`gather`), their
summary over seeds (`summary`) and the outputs (`report`, `plot`). This module keeps the names in one place."""
from .gather import gather_comparison
from .grid import check_modes, parse_budgets, plan_modes, run_comparison
from .plot import plot_accuracy
from .report import COLUMNS, OUTPUTS, PARTIAL, accuracy_table, protocol, report_markdown, result_row, write_csv, write_outputs
from .summary import ordered, summarize

__all__ = ["COLUMNS", "OUTPUTS", "PARTIAL", "accuracy_table", "check_modes", "gather_comparison", "ordered", "parse_budgets",
           "plan_modes", "plot_accuracy", "protocol", "report_markdown", "result_row", "run_comparison", "summarize",
           "write_csv", "write_outputs"]
