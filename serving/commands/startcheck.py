"""``returnlens serve``'s start-up checks in a process of their own (several workers).

With several workers, ``serve`` starts this module and, without waiting for it, becomes
the workers' supervisor (``serving/commands/supervise.py``). The workers import the
service, the longest part of start-up, while this process checks the model, the policy,
a shadow model, the database (migrating it) and the photo store, and with
``--seed-demo`` loads the demo data (``serving/commands/service.py``). It prints the
banner, or the one-sentence error, and exits 0 or 2. The supervisor opens the start
gate on 0, and the workers build their runtimes only then, on a migrated database; on
anything else it stops the workers and exits with the same status.

Its settings come from the environment, which ``serve`` fills from its flags.
"""

from __future__ import annotations

import sys

from vision.errors import ReturnLensError


def main() -> int:
    from serving.commands.service import checked_banner, prepared_banner
    from serving.settings import Settings

    try:
        settings = Settings()
        lines = prepared_banner(settings) if settings.seed_demo else checked_banner(settings)
    except ReturnLensError as exc:  # as the `returnlens` command prints it
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr, flush=True)
        return 2
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
