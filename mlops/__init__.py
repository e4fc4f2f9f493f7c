"""Shared plumbing for the template: the `mlops` CLI, params and paths."""
