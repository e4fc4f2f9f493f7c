"""Placeholder: this area's commands are added by their issue."""


def register(sub) -> None:
    return None
