"""Category renderers: each module has ``draw(layer, sku, rect, state, view) -> Geometry``
and ``damage(layer, geom, sku, label, severity, rng)``."""
