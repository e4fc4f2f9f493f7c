"""The run side: TorchServe handler, server config and the local server."""
