"""The HTTP API: `facekit serve` (FastAPI + uvicorn)."""
