"""`python -m app`: serve the coupon service (uvicorn, guarded protocol: app/server.py)."""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import urlsplit

from pydantic import ValidationError

from app.server import serve
from app.settings import Settings

__all__ = ["EXIT_INVALID_SETTINGS", "EXIT_STARTUP_FAILED", "describe_invalid_settings", "main"]

EXIT_INVALID_SETTINGS = 2
"""Exit status when the environment holds an invalid setting (nothing was started)."""

EXIT_STARTUP_FAILED = 3
"""Exit status when the server did not start (port taken, database never reachable), as
uvicorn.run had it."""

#: Variables whose values are secret, and so never printed even in part.
_SECRET_VARIABLES = ("DB_PASSWORD", "DATABASE_URL")


def _secret_values(environ: dict[str, str]) -> list[str]:
    """The secret values in the environment, the password inside DATABASE_URL included."""
    values: list[str] = []
    for name, value in environ.items():
        if name.upper() not in _SECRET_VARIABLES or not value:
            continue
        values.append(value)
        try:
            password = urlsplit(value).password
        except ValueError:  # not a URL; the whole value is redacted anyway
            password = None
        if password:
            values.append(password)
    # Longest first, so a password inside the URL is not redacted before the URL.
    return sorted(values, key=len, reverse=True)


def describe_invalid_settings(exc: ValidationError, environ: dict[str, str]) -> str:
    """One paragraph naming each invalid variable and what is wrong, without its value."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        variable = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{variable}: {message}" if variable else message)
    text = (
        "coupon service: invalid settings, nothing started. "
        + "; ".join(problems)
        + ". Fix the environment variables named above (see the Settings table in README.md)."
    )
    # Belt and braces: the messages above carry no input, but a validator's own message
    # could quote one; a secret never leaves the process.
    for secret in _secret_values(environ):
        text = text.replace(secret, "***")
    return text


def main() -> int:
    """Read the settings from the environment and serve until interrupted."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_invalid_settings(exc, dict(os.environ)), file=sys.stderr)
        return EXIT_INVALID_SETTINGS
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return 0 if serve(settings) else EXIT_STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
