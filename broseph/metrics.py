"""
Prometheus metrics (prometheus-client). Defined once here; the worker serves them on
METRICS_PORT, the ingress on its own port. Label values are job types, queues and outcomes —
never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter(
    "broseph_jobs_total",
    "Job attempts finished, by job type and outcome (completed, retrying, failed, cancelled).",
    ["job_type", "outcome"],
)
JOB_DURATION = Histogram(
    "broseph_job_duration_seconds",
    "Wall time of one job attempt, by job type.",
    ["job_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUEUE_DEPTH = Gauge(
    "broseph_queue_depth",
    "Queue rows by queue and procrastinate status (sampled).",
    ["queue", "status"],
)
OLDEST_PENDING = Gauge(
    "broseph_oldest_pending_seconds",
    "Age of the oldest runnable job that has not started, by queue (sampled).",
    ["queue"],
)
RESCUES = Counter(
    "broseph_rescued_jobs_total",
    "Jobs of lost workers given back to the queue (retried; released: fetched, never started),"
    " failed (attempts exhausted) or cancelled.",
    ["action"],
)
INGRESS = Counter(
    "broseph_ingress_jobs_total",
    "Jobs taken from an ingress source, by source queue and outcome "
    "(enqueued, duplicate, quarantined, error).",
    ["queue", "outcome"],
)
INGRESS_BACKLOG = Gauge(
    "broseph_ingress_backlog_jobs",
    "Jobs in an ingress source queue by state (BullMQ: waiting, prioritized, delayed, active), "
    "sampled.",
    ["queue", "state"],
)
INGRESS_LAG = Gauge(
    "broseph_ingress_lag_seconds",
    "How long the job next in line in an ingress source queue has waited since it was due "
    "(0 when none waits), sampled.",
    ["queue"],
)
