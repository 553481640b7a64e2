"""flowcap package."""
