"""signcheck: prove a Kubernetes cluster admits only Cosign-signed images, enforced by Kyverno."""

__version__ = "0.1.0"
