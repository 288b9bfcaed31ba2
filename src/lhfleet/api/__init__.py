"""``lhfleet serve``: the HTTP API, the dashboard and the job runner behind them.

Only ``app`` and the modules it imports need FastAPI (the ``server``
extra); ``tokens`` and ``settings`` work without it, for the CLI.
"""
