"""tiktok-pipeline: validate, transcode and publish videos to TikTok with Prefect 3.

This package is the thin shared shell: the one settings model, the error-kind protocol every core
package's hierarchy follows, and the `tiktok-pipeline` command line. The work lives in the core
packages (`tiktok`, `transcode`, `ledger`) and the Prefect shell (`tasks`, `flows`, `deployments`).
"""

from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings, load_settings

__all__ = ["PipelineError", "Settings", "load_settings"]
__version__ = "0.1.0"
