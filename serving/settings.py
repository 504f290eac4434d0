"""Service settings: flags and ``RETURNLENS_*`` environment variables, one typed object.

``returnlens serve`` builds a :class:`Settings` from the environment and overrides the
fields its flags name, so ``RETURNLENS_DATABASE_URL=postgresql+psycopg://...`` and
``--database-url`` mean the same thing. Worker processes started by uvicorn read the
same environment (the serve command exports its overrides before starting them).

The model to serve is resolved in this order: an explicit ``model_path``; the
``model_version`` in the registry at ``models_dir`` (``vision.registry``, torch-free);
the version promoted there; the default model shipped inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from vision.errors import ModelError
from vision.settings import SharedSettings

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
MiB = 1024 * 1024


class Settings(SharedSettings):
    """Every knob of the API process. Defaults give a working single-box install."""

    model_config = SettingsConfigDict(
        env_prefix="RETURNLENS_", extra="ignore", validate_default=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    database_url: str = "sqlite:///./var/returnlens.db"
    data_dir: Path = Path("./var")
    photo_dir: Path = Path("./var/photos")
    model_path: Path | None = None  # an explicit .onnx file wins over everything else
    model_version: str | None = None
    policy_path: Path | None = None  # None: the policy shipped in serving/policy/default.yaml
    # Prometheus multiprocess folder (serving/metrics.py): set by `returnlens serve` for
    # more than one worker, with PROMETHEUS_MULTIPROC_DIR at the same fresh folder. None:
    # one process, metrics in memory.
    metrics_dir: Path | None = None
    drift_window: int = Field(default=1000, ge=10, le=100_000)  # latest photos tested

    # Limits. A request body may hold max_photos files of max_upload_bytes plus overhead.
    max_upload_bytes: int = Field(default=12 * MiB, ge=1024)
    max_photos: int = Field(default=6, ge=1, le=32)
    max_pixels: int = Field(default=64_000_000, ge=10_000)
    max_json_bytes: int = Field(default=1 * MiB, ge=1024)  # JSON bodies of shopper/review calls
    max_admin_bytes: int = Field(default=64 * MiB, ge=1024)  # catalog uploads with base64 photos

    # Slow and stalled clients (serving/deadlines.py; applied by `returnlens serve`). A
    # request head must be complete within header_timeout_s of the connection waiting for
    # it, its body within body_timeout_s after the head; past either the connection is
    # closed (408 when part of the request came). 0 turns a deadline off. Each worker
    # serves at most max_connections connections at once; over it, requests get a 503.
    header_timeout_s: float = Field(default=10.0, ge=0, le=3600)
    body_timeout_s: float = Field(default=60.0, ge=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=100_000)

    # Token buckets: sustained requests per minute and burst size; 0 disables the limit.
    rate_limit_per_ip: float = Field(default=600.0, ge=0)
    rate_limit_per_ip_burst: int = Field(default=120, ge=1)
    rate_limit_per_key: float = Field(default=300.0, ge=0)
    rate_limit_per_key_burst: int = Field(default=60, ge=1)
    rate_limit_max_buckets: int = Field(default=10_000, ge=10)

    # Inference: how many quality gate + ONNX runs (and heatmap renders) may run at the
    # same time in one process (vision.pipeline.Lanes). The ONNX Runtime thread count
    # (`ort_threads`) and the registry folder (`models_dir`) are shared with the
    # torch-free tools: vision.settings.SharedSettings.
    inference_concurrency: int = Field(default=2, ge=1, le=64)
    # Bounded work for large-but-legal photos (vision.decode, vision.pipeline.Lanes): one
    # decode may allocate at most max_decode_mib (checked from the header, so a PNG or
    # WebP that would need more is refused with too_many_pixels before decoding); decodes
    # over 32 MiB run on heavy_decode_threads low-priority threads; upload_concurrency
    # requests (uploads, inspections, reference photos) run at once, the rest wait.
    max_decode_mib: int = Field(default=160, ge=32, le=4096)
    # Rendered heatmaps kept beside the photo store (least recently used go first).
    heatmap_cache_mib: int = Field(default=512, ge=0, le=1_048_576)
    heavy_decode_threads: int = Field(default=1, ge=1, le=16)
    upload_concurrency: int = Field(default=8, ge=1, le=256)
    # A return still waiting for its first photo after this many hours expires and
    # stops counting against its order line (serving/services/limits.py).
    abandoned_after_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    # The review queue's `teach` order (serving/services/review_order.py): label value =
    # w_uncertainty * (1 - confidence) + w_unfamiliar * (1 unfamiliar photo, 0.5 model
    # cannot tell) + w_value * log-scaled price; review_random_fraction of the items,
    # chosen by a hash of their id and the salt, are placed by chance (marked "random").
    review_weight_uncertainty: float = Field(default=1.0, ge=0, le=100)
    review_weight_unfamiliar: float = Field(default=1.0, ge=0, le=100)
    review_weight_value: float = Field(default=1.0, ge=0, le=100)
    review_random_fraction: float = Field(default=0.1, ge=0, le=1)
    review_random_salt: str = Field(default="returnlens-review", min_length=1, max_length=200)

    # Shadow mode (serving/services/shadow.py): a challenger graded beside the served model
    # on every new shopper decision, off the request path, its readings stored (never
    # shown). shadow_model_path wins over shadow_model_version (a registry version);
    # shadow_queue bounds the decisions waiting for it (more are skipped and counted).
    shadow_model_path: Path | None = None
    shadow_model_version: str | None = None
    shadow_queue: int = Field(default=64, ge=1, le=10_000)

    # The notification outbox (serving/services/outbox/): events written with the change
    # they report, delivered off the request path by a dispatcher thread in every worker
    # (outbox_dispatch; false: run `returnlens outbox dispatch` instead). webhook_url None:
    # the webhook channel is skipped; a URL needs webhook_secret (the HMAC key of the
    # X-ReturnLens-Signature header). smtp_host None: e-mail is skipped. A failed attempt
    # waits min(cap, base * 2^(attempts-1)) seconds, jittered; after outbox_max_attempts
    # the channel is failed (an admin can resend it). Each send is bounded by its timeout.
    webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    smtp_host: str | None = Field(default=None, min_length=1, max_length=255)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=5.0, gt=0, le=60)
    mail_from: str = Field(default="returns@localhost", min_length=3, max_length=320)
    outbox_dispatch: bool = True
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    outbox_backoff_base_s: float = Field(default=10.0, gt=0, le=86_400)
    outbox_backoff_cap_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    outbox_batch: int = Field(default=20, ge=1, le=1000)

    seed_demo: bool = False
    migrate_on_start: bool = True  # `returnlens serve` migrates once, then turns this off
    demo_seed: int = 7
    admin_key: SecretStr | None = None  # bootstrap admin credential (never stored)
    log_level: LogLevel = "info"

    @field_validator("database_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "must be a URL such as sqlite:///./var/returnlens.db or "
                "postgresql+psycopg://user@host/db"
            )
        return value

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        """A webhook without a secret would be unsigned: receivers could not tell our
        calls from anyone's, so the pair is refused at start-up rather than sent."""
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret (the signing key)")
        return self

    def threads_per_worker(self) -> int:
        """ONNX Runtime threads so that ``workers`` processes do not oversubscribe cores."""
        if self.ort_threads:
            return self.ort_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def max_request_bytes(self) -> int:
        """Cap for multipart photo uploads: every photo at its limit plus form overhead."""
        return self.max_photos * self.max_upload_bytes + MiB

    def resolve_model_path(self) -> Path:
        """The ONNX file to serve; raises ModelError with a sentence when there is none."""
        if self.model_path is not None:
            if not self.model_path.is_file():
                raise ModelError(
                    f"model file {self.model_path} does not exist", code="model_not_found"
                )
            return self.model_path
        from serving.models import default_model_path
        from vision.registry import ModelRegistry  # torch-free (onnx only)

        default = default_model_path()
        path = ModelRegistry(self.models_dir).resolve(self.model_version, default=default)
        if not path.is_file():
            raise ModelError(
                "no model to serve: the default model is not shipped in this build "
                f"({path} is missing), no model is promoted in {self.models_dir}, and no "
                "--model-version or --model-path was given; train one with `returnlens "
                "train`, then `returnlens model promote VERSION`",
                code="model_not_found",
            )
        return path

    def resolve_shadow_model_path(self) -> Path | None:
        """The challenger's ONNX file for shadow mode; None when none is configured.
        Raises ModelError with a sentence when the file or registry version is missing
        (the service logs it and serves without a shadow)."""
        if self.shadow_model_path is not None:
            if not self.shadow_model_path.is_file():
                raise ModelError(
                    f"shadow model file {self.shadow_model_path} does not exist",
                    code="model_not_found",
                )
            return self.shadow_model_path
        if self.shadow_model_version is None:
            return None
        from vision.registry import ModelRegistry  # torch-free (onnx only)

        return ModelRegistry(self.models_dir).get(self.shadow_model_version).path
