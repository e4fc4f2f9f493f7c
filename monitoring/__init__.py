"""The watch side: inference logs, Evidently drift checks and the retraining PR."""
