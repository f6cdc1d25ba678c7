"""unitlens.models."""
