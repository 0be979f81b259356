"""Functions served under /functions/v1/<name> by the local stack."""
