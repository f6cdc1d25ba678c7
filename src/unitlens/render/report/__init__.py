"""The browsable static HTML report of a run folder: overview, measured claims and a unit explorer."""

from unitlens.render.report.builder import write_report

__all__ = ["write_report"]
