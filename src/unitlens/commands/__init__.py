"""One module per CLI sub-command: argument parsing and file placement, calling the pure core."""
