"""Tests of the transcode package (real ffmpeg/ffprobe, lavfi-generated media)."""
