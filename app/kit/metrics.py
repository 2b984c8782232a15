"""Prometheus metrics, defined once; every module records into these objects."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "partnergate_http_requests_total",
    "HTTP requests served, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "partnergate_http_request_seconds",
    "HTTP request latency by route template",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ACCESS_DECISIONS = Counter(
    "partnergate_access_decisions_total",
    "Access decisions by result and status",
    ["allowed", "status"],
)
CTCT_CALLS = Counter(
    "partnergate_ctct_calls_total",
    "Calls to Constant Contact by operation and HTTP status ('error' for transport failures)",
    ["operation", "status"],
)
CTCT_TOKEN_FETCHES = Counter(
    "partnergate_ctct_token_fetches_total",
    "Partner token requests by outcome",
    ["outcome"],
)
CTCT_RATE_LIMIT_WAITS = Counter(
    "partnergate_ctct_rate_limit_waits_total",
    "Times a CTCT call waited for the shared budget or backed off a 429",
    ["reason"],
)
CTCT_QUOTA_LEFT = Gauge(
    "partnergate_ctct_daily_quota_remaining",
    "CTCT calls left in today's (UTC) quota, as last seen by this process",
)
OUTBOX_DEPTH = Gauge(
    "partnergate_outbox_depth",
    "Provisioning requests waiting to be sent to CTCT",
)
OUTBOX_OLDEST_AGE = Gauge(
    "partnergate_outbox_oldest_age_seconds",
    "Age of the oldest provisioning request waiting to be sent",
)
AUDIT_RUNS = Counter(
    "partnergate_audit_runs_total",
    "Audit runs by final state",
    ["state"],
)
# The worker's jobs. Counters and the histogram count this worker's own jobs; the gauges are
# read from Postgres when /metrics is scraped, so every worker reports the same queues.
WORKER_JOBS = Counter(
    "partnergate_worker_jobs_total",
    "Jobs this worker ran, by task and outcome (succeeded, failed, aborted)",
    ["task", "outcome"],
)
WORKER_JOB_SECONDS = Histogram(
    "partnergate_worker_job_seconds",
    "How long this worker took to run a job, by task",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
WORKER_JOBS_RUNNING = Gauge(
    "partnergate_worker_jobs_running",
    "Jobs this worker is running now, by task",
    ["task"],
)
JOBS_WAITING = Gauge(
    "partnergate_jobs_waiting",
    "Jobs due and not yet taken by any worker, by queue",
    ["queue"],
)
JOBS_IN_PROGRESS = Gauge(
    "partnergate_jobs_in_progress",
    "Jobs some worker is running, by queue",
    ["queue"],
)
JOBS_OLDEST_WAIT = Gauge(
    "partnergate_jobs_oldest_wait_seconds",
    "How long the oldest due job has waited for a worker, by queue (0 when none waits)",
    ["queue"],
)
