"""Clients of what a run talks to: the Kubernetes API, the OCI registry, workloads."""
