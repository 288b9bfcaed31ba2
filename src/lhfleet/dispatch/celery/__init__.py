"""The cluster engine: Celery workers audit runs that the job store leases.

Delivery is at least once (late acknowledgement, redelivery of a lost
worker's task, a sweeper that republishes runs whose message is gone);
outcomes are exactly once, because every state change of a run is a
conditional write in the SQL job store that only the lease holder makes.
"""
