"""Argument parsing for each area of the CLI. Keep these modules free of heavy imports."""
