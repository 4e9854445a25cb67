"""`python -m deployments.cli ...`: the `tiktok-pipeline` command without its console script."""

from deployments.cli import main

main()
