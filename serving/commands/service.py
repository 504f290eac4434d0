"""``returnlens serve``: start the API with uvicorn.

Flags override ``RETURNLENS_*`` environment variables. A missing model, a bad policy, a
database that cannot be opened is one sentence on stderr and exit status 2, not a
traceback from a worker. One worker per usable core by default (``Settings.workers``).
With one worker this process builds the whole runtime first (resolve and load the model,
check the policy against its labels, migrate the database; with ``--seed-demo`` load the
demo data and print the demo keys and orders), then serves. With several, those checks
run in a process of their own (``serving/commands/startcheck.py``) while this process
becomes the workers' light supervisor (``serving/commands/supervise.py``); the workers
start meanwhile and build their runtimes once the checks have passed. The workers get
the resolved settings through the environment (uvicorn starts them from an import
string), with ONNX Runtime threads split so that N workers do not oversubscribe the
cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Any

from vision.errors import ConfigError

FLAG_FIELDS = (
    "host",
    "port",
    "workers",
    "database_url",
    "model_version",
    "model_path",
    "models_dir",
    "seed_demo",
    "log_level",
)


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "serve",
        help="run the grading API (shopper, dock, review, admin)",
        description="Run the ReturnLens API with uvicorn. Every flag can also be set with "
        "a RETURNLENS_* environment variable (e.g. RETURNLENS_DATABASE_URL).",
    )
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--workers", type=int, help="uvicorn worker processes (default: one per usable core)"
    )
    p.add_argument(
        "--database-url",
        dest="database_url",
        help="sqlite:///./var/returnlens.db (default) or postgresql+psycopg://...",
    )
    p.add_argument(
        "--model-version",
        dest="model_version",
        help="serve this version from the models directory instead of the "
        "promoted or shipped default model",
    )
    p.add_argument("--model-path", dest="model_path", help="serve this .onnx file")
    p.add_argument(
        "--models-dir", dest="models_dir", help="model registry folder (default ./models)"
    )
    p.add_argument(
        "--seed-demo",
        dest="seed_demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load the demo catalog, orders and API keys first",
    )
    p.add_argument(
        "--log-level", dest="log_level", choices=("debug", "info", "warning", "error", "critical")
    )
    p.set_defaults(handler=serve)


def settings_from_args(args: argparse.Namespace) -> Any:
    """Settings from the environment, overridden by the flags that were given."""
    from pydantic import ValidationError

    from serving.settings import Settings

    given: dict[str, Any] = {f: getattr(args, f, None) for f in FLAG_FIELDS}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid setting {field}: {first['msg']}", code="invalid_setting"
        ) from exc


def export_env(settings: Any, model_path: str) -> None:
    """Hand the resolved settings to uvicorn's worker processes."""
    os.environ["RETURNLENS_DATABASE_URL"] = settings.database_url
    os.environ["RETURNLENS_MODEL_PATH"] = model_path
    os.environ["RETURNLENS_ORT_THREADS"] = str(settings.threads_per_worker())
    os.environ["RETURNLENS_SEED_DEMO"] = "false"  # seeded once, here
    os.environ["RETURNLENS_MIGRATE_ON_START"] = "false"  # migrated once, here
    os.environ["RETURNLENS_LOG_LEVEL"] = settings.log_level
    os.environ["RETURNLENS_WORKERS"] = str(settings.workers)


def _shown(url: str) -> str:
    """The database URL as printed: a password in it is masked (output goes to logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: the service refuses it later with its own message
        return url


def banner(settings: Any, model_version: str, policy_version: str) -> list[str]:
    base = f"http://{settings.host}:{settings.port}"
    return [
        f"ReturnLens on {base}  (model {model_version}, policy {policy_version}, "
        f"{settings.workers} worker(s), database {_shown(settings.database_url)})",
        f"  API docs       {base}/docs",
        f"  shopper page   {base}/",
        f"  reviewer page  {base}/review",
        f"  metrics        {base}/metrics",
        f"  health         {base}/healthz  {base}/readyz",
    ]


def _build(build: Any, settings: Any) -> Any:
    """Build the runtime; database and file-system failures become one sentence."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return build(settings)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(
            f"cannot open the database {_shown(settings.database_url)}: {reason}",
            code="database_unavailable",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot prepare {settings.data_dir}: {exc}", code="storage_unavailable"
        ) from exc


# glibc gives each thread that allocates its own malloc arena, up to 8 per core; a
# worker's request threads (anyio), gate pool, heavy-decode lane and ONNX Runtime threads
# each kept their own free lists of photo-sized buffers, which is most of the gap between
# a worker's RSS after warm-up and its peak under a concurrency-16 load (benchmarks/README).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc malloc arenas in this process and in the workers uvicorn spawns.

    The environment variable reaches spawned workers (glibc reads it at start-up); this
    process, which serves itself with one worker, is already running, so it also calls
    ``mallopt`` before any request thread exists. Set by the operator, it is left alone.
    Elsewhere than glibc nothing happens."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_ARENA_MAX, arenas)
    except OSError:  # not glibc: nothing to set
        pass


def checked_banner(settings: Any) -> list[str]:
    """The start-up checks and migrations alone (``serving.checks``): the banner."""
    from serving.checks import check_start

    started = _build(check_start, settings)
    return banner(settings, started.model_version, started.policy_version)


def prepared_banner(settings: Any) -> list[str]:
    """A whole runtime built (which checks and migrates) and, with ``--seed-demo``, the
    demo data loaded through its service: the banner and the demo's lines."""
    from serving.app import build_runtime

    runtime = _build(build_runtime, settings)
    try:
        lines = banner(settings, runtime.model_version, runtime.policy_version)
        if settings.seed_demo:
            from serving.demo import seed_demo

            result = seed_demo(runtime.service, settings.data_dir, seed=settings.demo_seed)
            lines += result.lines()
    finally:
        if runtime.close is not None:
            runtime.close()
    # With one worker uvicorn serves from this process, which builds its own runtime;
    # this one (its ONNX session is ~100 MB of RSS) is dropped on return, before that.
    return lines


def serve(args: argparse.Namespace) -> int:
    from serving.commands.supervise import UvicornOptions, exec_supervisor, run

    limit_malloc_arenas()
    settings = settings_from_args(args)
    model_path = settings.resolve_model_path()
    options = UvicornOptions.of(settings)
    if settings.workers == 1:  # this process serves: it checks and builds in one go
        lines = prepared_banner(settings)
        export_env(settings, str(model_path.resolve()))
        print("\n".join(lines), flush=True)
        return run(options)
    # The checks run beside the workers' start (serving/commands/startcheck.py), which
    # wait at the start gate; the supervisor opens it once the checks have passed.
    checker = subprocess.Popen(
        [sys.executable, "-m", "serving.commands.startcheck"],
        env={**os.environ, **settings_env(settings)},
    )
    export_env(settings, str(model_path.resolve()))
    gate = start_gate()
    multiprocess_metrics(settings.workers)  # the supervisor removes both when it stops
    exec_supervisor(options, checker=checker.pid, gate=gate)  # never returns
    return 0


def settings_env(settings: Any) -> dict[str, str]:
    """The fields the flags can set, as ``RETURNLENS_*`` variables: a child process's
    ``Settings()`` then equals ``settings``."""
    values = {f: getattr(settings, f) for f in FLAG_FIELDS}
    return {f"RETURNLENS_{f.upper()}": str(v) for f, v in values.items() if v is not None}


def start_gate() -> str:
    """The file whose existence tells the workers that the start-up checks passed (in a
    fresh folder; the workers find it through ``RETURNLENS_START_GATE``)."""
    path = os.path.join(tempfile.mkdtemp(prefix="returnlens-start-"), "checked")
    os.environ["RETURNLENS_START_GATE"] = path
    return path


def multiprocess_metrics(workers: int) -> str | None:
    """With several workers, a fresh Prometheus multiprocess folder (serving/metrics.py).

    Each worker writes its counters there and every scrape sums all of them, so no
    scrape misses another worker's counts. Set in the environment before uvicorn spawns
    the workers (prometheus_client picks its value store at import). A new empty folder
    per start: a previous run's files never leak into this one's totals.
    """
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="returnlens-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.environ["RETURNLENS_METRICS_DIR"] = path
    return path
