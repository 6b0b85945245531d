"""Sensors of the project (deferrable where waiting can be long)."""
