"""Evaluation of finished runs, one job a module.

scores      the paper's tables and human-normalized scores (the training loop's summary uses them)
runs        finding, reading and grouping run folders (summary.json, eval.csv, metrics.csv)
aggregates  rliable aggregates of human-normalized scores with bootstrap intervals
tables      our runs beside the paper's tables, per Atari game and per DMControl task
The report and its figures are experiments/aggregate.py's.
"""
