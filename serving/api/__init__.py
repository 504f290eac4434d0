"""HTTP routers of the ReturnLens API (``/v1``) and their dependencies.

Routers call the service's use-case functions (``serving.services.shopper`` and its
siblings) with the ``ReturnLensService`` that ``deps.ServiceDep`` injects; they never
touch storage. Their bodies and responses are the service's own models.
``serving.app.create_app`` assembles them.
"""
