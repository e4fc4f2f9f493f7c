"""The run side: TorchServe handler, server config and model archiving."""
