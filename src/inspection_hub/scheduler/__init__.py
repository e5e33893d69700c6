"""Periodic jobs on APScheduler; each domain declares its jobs in `<domain>/scheduled.py`."""
