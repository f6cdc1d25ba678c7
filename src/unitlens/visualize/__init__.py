"""unitlens.visualize."""
