"""The build side: data, schema validation, the Lightning model, training and evaluation."""
