"""The HTTP transport: ``create_app()`` builds the FastAPI application."""

from rnnbridge.service.app import create_app

__all__ = ["create_app"]
