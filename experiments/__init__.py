"""Reproductions of paper tables, each driving the library's own trainers, loop and estimators."""
