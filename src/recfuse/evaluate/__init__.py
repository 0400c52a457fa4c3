"""Evaluation: metrics, the ranking protocol, the benchmark runner and its report.

* :mod:`recfuse.evaluate.protocol`     ``evaluate(model, evalset, train)``: full ranking, history masked;
* :mod:`recfuse.evaluate.significance` paired Wilcoxon / t-tests;
* :mod:`recfuse.evaluate.runner`       ``run_benchmark``: tune on valid, seeds, test, significance;
* :mod:`recfuse.evaluate.report`       ``results.json`` / ``results.md`` / slice plots;
* :mod:`recfuse.evaluate.cli`          the ``recfuse benchmark`` command.

The metrics themselves are :mod:`recfuse.metrics` (training's early stopping
uses them too).  Nothing is imported here, so ``import recfuse.evaluate.protocol``
stays light (the runner pulls in every model, torch included).
"""
