"""unitlens.render."""
