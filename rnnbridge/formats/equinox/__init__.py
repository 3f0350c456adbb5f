"""equinox."""
