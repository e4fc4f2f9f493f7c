"""From a merged PR to a running image: the lock check, artifacts handed to the trusted
job, re-measurement, the registry and its gates, the .mar, the image tag, GitOps delivery and alerts."""
