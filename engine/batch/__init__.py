"""Batch detection over many scenes, on this machine or a Dask cluster (docs/BATCH.md)."""
from .runner import BatchRequest, BatchResult, run_batch, work_folder

__all__ = ["BatchRequest", "BatchResult", "run_batch", "work_folder"]
