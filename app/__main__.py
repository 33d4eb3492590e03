"""`python -m app`: serve the coupon service with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from app.api import create_app
from app.settings import Settings


def main() -> None:
    """Read the settings from the environment and serve until interrupted."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.server_host,
        port=settings.server_port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.request_deadline) + 1,
    )


if __name__ == "__main__":
    main()
