"""ailora_analysis: load the HDF5 run files of an ailora sweep into pandas and plot them.

    from ailora_analysis import load_runs, load_curves, summarize
    runs = load_runs("sweeps/rank_ratio")            # one row per run file
    table = summarize(runs, by=["method"], metric="eval_loss")   # paired, bootstrap, Holm
    curves = load_curves(runs)                       # long format: run, step, loss, ...

Command line: python3 -m ailora_analysis SWEEP_DIR [--by method] [--metric eval_loss]
              [--out DIR]  (prints the summary table, writes PNG figures)
              python3 -m ailora_analysis.report SWEEP_DIR --out report.html  (one HTML file)
Requires numpy, pandas, h5py, matplotlib and scipy (Debian: python3-numpy
python3-pandas python3-h5py python3-matplotlib python3-scipy, for /usr/bin/python3).
"""
from .runs import load_runs, load_curves, load_spectra, load_examples, steps_to_loss
from .stats import (summarize, compare, describe, mean_ci, wilson, holm, paired_difference,
                    group_interval, bootstrap_means, metric_bounds)
from .plots import plot_learning_curves, plot_spectra, plot_ratio_heatmap, plot_convergence
from .diagnostics import load_diagnostics, plot_update_energy

__all__ = ["load_runs", "load_curves", "load_spectra", "load_examples", "steps_to_loss", "summarize",
           "compare", "describe", "mean_ci", "wilson", "holm", "paired_difference", "group_interval",
           "bootstrap_means", "metric_bounds",
           "plot_learning_curves", "plot_spectra", "plot_ratio_heatmap", "plot_convergence",
           "load_diagnostics", "plot_update_energy"]
