"""Receivers compared by ``gateway bench`` (one module each, run as ``python -m benchmarks.contenders.NAME``).

Every contender speaks the same little protocol with the orchestrator (gateway/bench.py):
stdin line 1 is JSON ``{"streams": [...], "client_id", "client_secret", "speakers"}``; then the
commands ``measure`` (open the window), ``end`` (close it) and ``stop`` (report and exit).
stdout: ``joined`` once every stream was asked to join, then one JSON report line.
"""
