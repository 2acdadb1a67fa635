"""Insight: flag files, git history and usage in; reports out.

Takes the repository, its git history and the usage counters; gives the flag
catalogue, plain-English descriptions of rules, stale-flag reports, usage reports
and references from code.
"""
