"""The template's configuration and plumbing that every layer may import: params, paths,
errors, raw values, git, the MLflow connection. It imports nothing else of the product."""
