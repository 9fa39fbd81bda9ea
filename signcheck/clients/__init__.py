"""What a run talks to: the Kubernetes API (and what admission answered), the OCI registry
and the test image, pod controllers."""
