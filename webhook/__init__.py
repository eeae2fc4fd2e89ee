"""irsa-webhook: IAM Roles for Service Accounts for any Kubernetes cluster."""

__version__ = "0.1.0"
