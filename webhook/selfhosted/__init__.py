"""Tooling for self-hosted IRSA: signing keys, OIDC discovery/JWKS, IAM trust policies."""
