"""
Operations: rescue of lost workers' jobs, riding out database restarts, retention, inspection,
health and metrics (docs/reliability.md).
"""
