"""The platform API (FastAPI): see api/README.md."""
