"""Classifier evaluation: per-sample predictions CSV, metrics with bootstrap CIs, ROC and training-curve plots.

Research software, not a medical device: the numbers describe a model on a data set, not clinical performance.
"""
