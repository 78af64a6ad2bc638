"""Model manifests and the code that finds, fetches, verifies and exports weights."""
