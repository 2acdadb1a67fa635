"""Delivery: snapshots in, Redis state out.

Takes compiled snapshots and operator commands; gives atomic syncs, plans (what a
merge would change, and for how many users), emergency overrides and status/drift.
The Redis key layout itself lives in `flagsync.store`.
"""
