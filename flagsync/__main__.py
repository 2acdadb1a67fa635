from flagsync.cli import run

run()
