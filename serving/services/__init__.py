"""The domain layer between the HTTP API and storage/vision/policy.

``service.ReturnLensService`` holds what every use case needs; the use cases are plain
functions of ``shopper``, ``dock``, ``review``, ``admin`` and ``media``. What enters is
``inputs`` (validated once, with the types of ``fields``); what leaves is ``outputs`` and
``records``, read from the rows. This package init stays light (imports nothing).
"""
