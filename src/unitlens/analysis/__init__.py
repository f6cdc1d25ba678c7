"""unitlens.analysis."""
