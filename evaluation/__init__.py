"""Evaluation: accuracies (UA/RA/TA), the SVC membership-inference attack, RTE, results files."""
