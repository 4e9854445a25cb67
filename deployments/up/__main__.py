"""`python -m deployments.up up|down` (what `make up` and `make down` run)."""

import sys

from deployments.up.stack import main

sys.exit(main())
