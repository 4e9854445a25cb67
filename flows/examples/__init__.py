"""Examples of other pipelines syndicating their videos to TikTok (see README "Syndication")."""
