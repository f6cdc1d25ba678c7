"""unitlens.data."""
