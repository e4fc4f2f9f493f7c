class UserError(Exception):
    """A failure caused by input or state the user can fix; the CLI prints it without a traceback."""
