"""HTTP routers of the ReturnLens API (``/v1``) and their dependencies.

Routers call only ``serving.services.service.ReturnLensService``; they never touch
storage. ``serving.app.create_app`` assembles them.
"""
