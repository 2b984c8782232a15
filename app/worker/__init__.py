"""Background jobs: their definitions (`*_jobs.py`), the worker's resources and entry point.

The procrastinate App and the list of job modules are `app.kit.jobs` (`job_app`,
`TASK_MODULES`); domains defer jobs by task name and never import this package.
"""
