"""unitlens.training."""
