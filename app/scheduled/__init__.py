"""Scheduled work as data: the job table, the functions that jobs run (marked by the
decorators, discovered per application), and storing a job in the caller's transaction.
The runner that claims and runs jobs is ``app.jobs``; this package sits below the
transaction, which schedules through it (``tx.schedule``)."""
