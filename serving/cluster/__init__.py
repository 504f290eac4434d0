"""A scaled-out ReturnLens on one machine (``make cluster``): PostgreSQL, SeaweedFS (S3),
API replicas and a job worker. ``servers`` starts the two servers, ``launch`` the rest."""
