"""One module per ``irsa-webhook`` subcommand, each with ``register(subparsers)``."""
