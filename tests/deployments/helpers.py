"""What the CLI tests share."""

from __future__ import annotations


def one_error_line(result, code: int) -> str:
    """The one `error: …` line a CliRunner result printed on stderr, having exited `code`."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
