"""`vigil batch`: a pipeline over many recorded files, locally or on a Ray cluster."""

from pipeline.batch.batch_run import BatchOptions, BatchReport, plan_threads, run_batch

__all__ = ["BatchOptions", "BatchReport", "plan_threads", "run_batch"]
