"""Runtime (private): what keeps a `FlagClient` serving.

Takes snapshots from Redis, the cache file or the flag files; gives the immutable
`Current` that evaluation reads, state changes and change events. Nothing here is
public API: application code uses `flagsync.FlagClient`.
"""
