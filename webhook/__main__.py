"""`python -m webhook` is the same as the `irsa-webhook` console script."""

import sys

from webhook.cli import main

sys.exit(main())
