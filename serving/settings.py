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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and
    ``taskset`` narrow), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Settings(SharedSettings):
    """Every knob of the API process. Defaults give a working single-box install."""

    model_config = SettingsConfigDict(
        env_prefix="RETURNLENS_", extra="ignore", validate_default=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # uvicorn worker processes: one per usable core by default. One worker is bound by the
    # GIL (its request threads' Python takes turns), not by the cores: on the 2-core bench
    # it served 1600 px photos at 16 clients barely faster than at 1 (20.9 against 19.7
    # photos/s, 1.6 cores busy); two workers served 24.0 (README, Performance).
    workers: int = Field(default_factory=usable_cores, ge=1, le=64)
    database_url: str = "sqlite:///./var/returnlens.db"
    data_dir: Path = Path("./var")
    photo_dir: Path = Path("./var/photos")
    # The photo store (serving/storage/photostore.py): `local` keeps the photos in
    # photo_dir; `s3` keeps them in an S3-compatible bucket (AWS, SeaweedFS, MinIO, ...)
    # under s3_prefix, and photo_dir only holds what is rebuilt from them (the heatmap
    # cache beside it). s3_endpoint_url None: AWS. No access key: boto3's own chain
    # (AWS_* variables, instance role). A store slower than its timeouts, or down, makes
    # uploads answer 503 photo_store_unavailable with Retry-After, and /readyz false.
    photo_store: Literal["local", "s3"] = "local"
    s3_bucket: str | None = Field(
        default=None, min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$"
    )
    s3_prefix: str = Field(default="photos/", max_length=512)
    s3_endpoint_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
    s3_region: str = Field(default="us-east-1", min_length=1, max_length=64)
    s3_access_key_id: str | None = Field(default=None, min_length=1, max_length=256)
    s3_secret_access_key: SecretStr | None = None
    s3_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    s3_read_timeout_s: float = Field(default=10.0, gt=0, le=300)
    s3_max_attempts: int = Field(default=2, ge=1, le=10)  # per call, first try included
    model_path: Path | None = None  # an explicit .onnx file wins over everything else
    model_version: str | None = None
    policy_path: Path | None = None  # None: the policy shipped in serving/policy/default.yaml
    # Prometheus multiprocess folder (serving/metrics.py): set by `returnlens serve` for
    # more than one worker, with PROMETHEUS_MULTIPROC_DIR at the same fresh folder. None:
    # one process, metrics in memory.
    metrics_dir: Path | None = None
    # Set by `returnlens serve` for several workers: the file whose existence says the
    # start-up checks passed (serving/commands/startcheck.py); each worker waits for it
    # before building its runtime. None: build at once.
    start_gate: Path | None = None
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

    # Rate limits (serving/ratelimit.py): sustained requests per minute and burst size per
    # client address and per credential; 0 disables the limit. Counted in a storage that
    # every worker and replica shares: `database` (the application database, the
    # default: no new server), `redis://host:port` (the `redis` extra) or `memory://`
    # (this process only).
    rate_limit_per_ip: float = Field(default=600.0, ge=0)
    rate_limit_per_ip_burst: int = Field(default=120, ge=1)
    rate_limit_per_key: float = Field(default=300.0, ge=0)
    rate_limit_per_key_burst: int = Field(default=60, ge=1)
    rate_limit_storage: str = Field(
        default="database",
        pattern=r"^(database|memory://|(redis|rediss|redis\+unix|redis\+sentinel|redis\+cluster)://\S+)$",
        max_length=2000,
    )

    # Inference: how many quality gate + ONNX runs (and heatmap renders) may run at the
    # same time in one process (vision.pipeline.Lanes). The ONNX Runtime thread count
    # (`ort_threads`) and the registry folder (`models_dir`) are shared with the
    # torch-free tools: vision.settings.SharedSettings.
    inference_concurrency: int = Field(default=2, ge=1, le=64)
    # Bounded work for large-but-legal photos (vision.decode, vision.pipeline.Lanes): one
    # decode may allocate at most max_decode_mib (checked from the header, so a PNG or
    # WebP that would need more is refused with too_many_pixels before decoding); decodes
    # over 32 MiB run on heavy_decode_threads low-priority threads. Grading requests
    # (uploads, inspections, reference photos) run on two sets of threads (the rest
    # wait): upload_concurrency (default: the worker's cores, at least 2) for requests
    # whose photos are all light, heavy_upload_concurrency for requests with a heavy photo
    # (they mostly wait for the heavy-decode thread, and must not take a light one's slot).
    max_decode_mib: int = Field(default=160, ge=32, le=4096)
    # Rendered heatmaps kept beside the photo store (least recently used go first).
    heatmap_cache_mib: int = Field(default=512, ge=0, le=1_048_576)
    heavy_decode_threads: int = Field(default=1, ge=1, le=16)
    upload_concurrency: int | None = Field(default=None, ge=1, le=256)
    heavy_upload_concurrency: int = Field(default=6, ge=1, le=256)
    # Upload admission (serving/api/admission.py): a photo upload reserves its declared
    # size before its body is read; while the worker holds upload_admission_bytes of
    # reservations, the next waits (its body left unread), at most upload_admission_wait_s
    # (then 503 uploads_busy). 0 turns admission off.
    upload_admission_bytes: int = Field(default=48 * MiB, ge=0)
    upload_admission_wait_s: float = Field(default=10.0, gt=0, le=3600)
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

    # Background jobs (serving/services/jobs/, `returnlens jobs worker`): a huey queue at
    # job_queue (sqlite:///FILE, postgresql://..., redis://...; None: the SQLite file
    # DATA_DIR/jobs.db). A failing job is tried job_retries more times, job_retry_delay_s
    # apart; a job still `running` job_lease_s after it started (its worker died) is
    # enqueued again by the sweep, which every job_sweep_seconds also enqueues whatever
    # durable work is due. jobs_outbox: the service enqueues an outbox delivery job after
    # each event instead of relying on its dispatcher thread alone.
    job_queue: str | None = Field(default=None, min_length=3, max_length=2000)
    job_retries: int = Field(default=3, ge=0, le=100)
    job_retry_delay_s: float = Field(default=30.0, ge=0, le=86_400)
    job_lease_s: float = Field(default=900.0, ge=1, le=7 * 86_400)
    job_sweep_seconds: float = Field(default=30.0, gt=0, le=86_400)
    job_poll_s: float = Field(default=1.0, gt=0, le=60)
    jobs_outbox: bool = False

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

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        """Keys are ``<prefix>ab/cdef....jpg``: no leading slash, one trailing slash."""
        value = value.strip().strip("/")
        if value and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("must be a key prefix such as photos/ or shop-1/photos/")
        return f"{value}/" if value else ""

    @model_validator(mode="after")
    def _s3_is_complete(self) -> Settings:
        """The S3 store needs its bucket, and a key id goes with its secret."""
        if self.photo_store == "s3" and self.s3_bucket is None:
            raise ValueError("photo_store s3 needs s3_bucket (RETURNLENS_S3_BUCKET)")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError(
                "s3_access_key_id and s3_secret_access_key go together: set both, or "
                "neither to use boto3's own credentials (AWS_* variables, instance role)"
            )
        return self

    @field_validator("job_queue")
    @classmethod
    def _job_queue_backend(cls, value: str | None) -> str | None:
        if value is not None:
            job_queue_backend(value)
        return value

    def job_queue_url(self) -> str:
        """The job queue's URL: ``job_queue``, else a SQLite file in the data folder."""
        return self.job_queue or f"sqlite:///{self.data_dir / 'jobs.db'}"

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        """A webhook without a secret would be unsigned: receivers could not tell our
        calls from anyone's, so the pair is refused at start-up rather than sent."""
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret (the signing key)")
        return self

    def cores_per_worker(self) -> int:
        """This machine's cores shared among the ``workers`` processes (0 when fewer)."""
        return usable_cores() // self.workers

    def threads_per_worker(self) -> int:
        """ONNX Runtime threads so that ``workers`` processes do not oversubscribe cores."""
        return self.ort_threads or max(1, self.cores_per_worker())

    def light_upload_slots(self) -> int:
        """Grading requests with light photos only, at once, per worker: one per core the
        worker has (at least 2, so one request's I/O waits leave the CPU to another).
        More only adds threads taking turns on the same cores: on the 2-core bench, 8 at
        once cost 95-98 ms of CPU per 1600 px photo at 16 clients, 2 at once 85-87 ms
        (``benchmarks/upload_slots.py``)."""
        return self.upload_concurrency or max(2, self.cores_per_worker())

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


JOB_QUEUE_BACKENDS = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}
JOB_QUEUE_BACKENDS |= {"redis": "redis", "rediss": "redis"}


def job_queue_backend(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``redis`` for a job queue URL; ValueError otherwise
    (``postgresql+psycopg://`` is accepted: the driver part is dropped)."""
    scheme, sep, rest = url.partition("://")
    backend = JOB_QUEUE_BACKENDS.get(scheme.split("+", 1)[0].lower()) if sep else None
    if backend is None:
        raise ValueError(
            "must be a URL such as sqlite:///./var/jobs.db, postgresql://user@host/db "
            "or redis://host:6379/0"
        )
    if backend == "sqlite" and rest in ("", "/"):
        raise ValueError("a sqlite job queue needs a file: sqlite:///./var/jobs.db")
    return backend
