"""``selfrl report RUN_DIR [RUN_DIR …]``: a run seen in one self-contained HTML file.

The page holds the resolved config; the curves (reward and each of its parts, held-out
accuracy, KL, entropy, length, clip fraction, the step-time split, and for the self-judging
recipes the judge's accuracy and position consistency), several runs overlaid; the held-out
evaluation before and after; SeRL's generated → kept → trained funnel; and a samples browser over
``rollouts.jsonl`` (filter by step, reward, correctness; the best and worst group of a step side
by side; completions diffed against the SRL target or the gold solution).  The charts are
plotly.js's, inlined from the plotly package, so the file opens offline; a run that is still
going is read as far as it has been written.

- :mod:`~selfrl.report.runs`: reading a run folder, and notes on what is missing;
- :mod:`~selfrl.report.charts`: the charts as plotly figures;
- :mod:`~selfrl.report.samples`: the samples browser's HTML;
- :mod:`~selfrl.report.page`: the page, :func:`write_report`;
- :mod:`~selfrl.report.screenshot`: a PNG of a report in headless Chromium (Playwright).
"""

from selfrl.report.page import SAMPLES_LIMIT, build_html, report_after_training, write_report
from selfrl.report.runs import NotARunError, RunData, read_run

__all__ = ["SAMPLES_LIMIT", "NotARunError", "RunData", "build_html", "read_run", "report_after_training",
           "write_report"]
