"""The command-line scripts (one per stage, and run_all.py that chains them) and, beside them,
the stage engine (:mod:`pipelines.engine`)."""
