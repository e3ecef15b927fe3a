"""``python -m openfga_release.recipes.kraftcloud deploy|dry-run|status|backup ...``

Secrets come only from the environment (set from Dagger secrets with
``with_secret_variable``): ``UKC_TOKEN``, ``POSTGRES_MIGRATOR_PASSWORD``,
``POSTGRES_APP_PASSWORD``, ``POSTGRES_READONLY_PASSWORD`` (first boot only),
``FGA_PRESHARED_KEYS`` (comma-separated); ``backup`` reads the read-only
password and ``BACKUP_S3_ACCESS_KEY_ID`` / ``BACKUP_S3_SECRET_ACCESS_KEY``.
Everything printed is filtered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from ..errors import ReleaseError
from .deploy import Deploy, Printer, backup, status
from .plan import BACKUP_SECRET_ENV, BACKUP_TIMEOUT_S, BackupJob, Spec, secrets_from_env
from .retry import RetryPolicy

TOKEN_ENV = "UKC_TOKEN"  # noqa: S105 (a variable name)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m openfga_release.recipes.kraftcloud")
    p.add_argument("command", choices=("deploy", "dry-run", "status", "backup"))
    p.add_argument("--metro", required=True, help="fra, dal, ... or an http(s):// API URL")
    p.add_argument("--openfga-image", default="", help="by digest (not for backup)")
    p.add_argument("--postgres-image", default="", help="by digest (not for backup)")
    p.add_argument("--name", default="openfga")
    p.add_argument("--domain", default="")
    p.add_argument("--volume-size-mb", type=int, default=1024)
    p.add_argument("--postgres-memory-mb", type=int, default=1024)
    p.add_argument("--openfga-memory-mb", type=int, default=512)
    p.add_argument("--scale-to-zero", default="idle", choices=("off", "on", "idle"))
    p.add_argument("--cooldown-ms", type=int, default=1000)
    p.add_argument("--migrate-timeout-s", type=int, default=30)
    p.add_argument("--no-smoke", action="store_true")
    p.add_argument("--allow-tags", action="store_true", help="accept image tags (tests only)")
    p.add_argument("--ca-file", default="", help="CA bundle for the public name (tests)")
    p.add_argument("--attempts", type=int, default=RetryPolicy.attempts)
    b = p.add_argument_group("backup (the one-shot <name>-backup on the private network)")
    b.add_argument("--backup-image", default="", help="backup image by digest")
    b.add_argument("--s3-endpoint", default="")
    b.add_argument("--s3-bucket", default="")
    b.add_argument("--s3-prefix", default="")
    b.add_argument("--s3-region", default="us-east-1")
    b.add_argument("--keep", type=int, default=14)
    b.add_argument("--max-age-days", type=int, default=None)
    b.add_argument("--backup-memory-mb", type=int, default=512)
    b.add_argument("--backup-timeout-s", type=int, default=BACKUP_TIMEOUT_S)
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace, out: Printer) -> int:
    from .api import Platform

    job: BackupJob | None = None
    if args.command == "backup":
        job = BackupJob(name=args.name, image=args.backup_image, endpoint=args.s3_endpoint,
                        bucket=args.s3_bucket, prefix=args.s3_prefix, region=args.s3_region,
                        keep=args.keep, max_age_days=args.max_age_days,
                        memory_mb=args.backup_memory_mb, timeout_s=args.backup_timeout_s,
                        allow_tags=args.allow_tags)
    else:
        spec = Spec(openfga_image=args.openfga_image, postgres_image=args.postgres_image,
                    name=args.name, domain=args.domain, volume_size_mb=args.volume_size_mb,
                    postgres_memory_mb=args.postgres_memory_mb,
                    openfga_memory_mb=args.openfga_memory_mb,
                    scale_to_zero=args.scale_to_zero, cooldown_ms=args.cooldown_ms,
                    migrate_timeout_s=args.migrate_timeout_s, allow_tags=args.allow_tags)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        out(f"error: {TOKEN_ENV} is not set: pass the KraftCloud token as a Dagger secret")
        return 2
    need = ("migrator", "app", "keys") if args.command == "deploy" else ()
    secrets = secrets_from_env(os.environ, need=need)
    platform = Platform(args.metro, token, RetryPolicy(attempts=args.attempts), log=out)
    try:
        if job is not None:
            await backup(platform, job, {k: os.environ.get(v, "")
                                         for k, v in BACKUP_SECRET_ENV.items()}, out)
        elif args.command == "status":
            await status(platform, spec, out)
        else:
            await Deploy(platform, spec, secrets, out, smoke=not args.no_smoke,
                         verify=args.ca_file or True).run(dry_run=args.command == "dry-run")
    finally:
        await platform.aclose()
        out(f"api round trips: {platform.counters.round_trips} "
            f"(retries {platform.counters.retries})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    secrets = [os.environ.get(v, "") for v in (
        TOKEN_ENV, "POSTGRES_MIGRATOR_PASSWORD", "POSTGRES_APP_PASSWORD",
        "POSTGRES_READONLY_PASSWORD", *BACKUP_SECRET_ENV.values())]
    secrets += os.environ.get("FGA_PRESHARED_KEYS", "").split(",")
    out = Printer(secrets, sink=lambda s: print(s, flush=True))
    try:
        return asyncio.run(main_async(args, out))
    except ReleaseError as exc:
        out(f"FAILED: {exc}")
        return 1
    except Exception as exc:  # anything else, still filtered
        out(f"FAILED (unexpected {type(exc).__name__}): {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
