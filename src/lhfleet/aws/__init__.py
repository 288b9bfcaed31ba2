"""The AWS serverless engine: DynamoDB jobs, S3 reports, SQS (or SNS) fan-out, Lambda.

Modules, by port and role:

- ``store``: the JobStore adapter on two DynamoDB tables (jobs, runs).
- ``reports``: the ReportStore adapter on an S3 bucket.
- ``hook_ledger``: the HookLedger adapter on a third table (hooks).
- ``fanout``: the Dispatcher; publishes one message per run, resumably.
- ``worker``, ``completion``, ``sweep``: what the Lambda functions do.
- ``handlers``: the Lambda entry points, which parse the events Lambda sends.
- ``client``: what ``lhfleet aws`` calls with the user's credentials.
- ``provision``: creates the same resources as the template, for emulators.
"""
