"""tiktok package."""
