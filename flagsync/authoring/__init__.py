"""Authoring: flag files in, findings and snapshots out.

Takes `flags/**/*.yaml`; gives located findings (parse, schema, semantic checks)
and, for a valid tree, one compiled snapshot dict per environment. Everything that
reads flag files (validate, eval, sync, plan, docs, the runtime's file fallback)
goes through `pipeline.build`.
"""
