"""The domain layer between the HTTP API and storage/vision/policy.

Import the service from ``serving.services.service``; this package init stays light so
``serving.storage`` can import ``serving.domain_errors`` without a cycle.
"""
