"""Background jobs (RQ + Redis): `submit` from Python or Jupyter, `facekit worker` runs them.

handle = submit("cluster-dual", store=".facekit/demo-store")
result = handle.wait()   # a progress bar, then the pass summary
"""

from facekit.jobs.handle import JobHandle, submit
from facekit.jobs.queue import JobError, cancel, enqueue, list_jobs, requeue, show, wait

__all__ = ["JobError", "JobHandle", "cancel", "enqueue", "list_jobs", "requeue", "show", "submit", "wait"]
