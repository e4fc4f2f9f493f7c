"""GitHub plumbing: the API client, Actions step outputs and summaries, action pins."""
