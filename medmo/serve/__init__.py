"""Serving: an OpenAI-compatible HTTP server with a web page (``medmo serve MODEL``).

``from medmo.serve.app import create_app`` builds the FastAPI app; nothing heavy loads on import.
For research only; not for clinical decisions.
"""
