"""The cluster engine: Celery workers audit runs that the job store leases.

Delivery is at least once: tasks are acknowledged late, a lost worker's
task is delivered again, and a sweeper republishes runs whose message is
gone. Outcomes are exactly once, because every state change of a run is a
conditional write in the SQL job store that only the lease holder makes.
"""
