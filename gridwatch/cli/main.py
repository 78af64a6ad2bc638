"""The `gridwatch` command: serve, check-config, analyze, evaluate, users, models.

Every expected failure (bad configuration, missing weights, an unreachable stream) ends with
a one-paragraph message naming the field, file or stream, and a non-zero exit code; a
traceback means a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gridwatch.common.redact import redact
from gridwatch.settings import ConfigError, load_config

EXIT_CONFIG = 2
EXIT_MODEL = 3
EXIT_SOURCE = 4
EXIT_DATA = 5


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Migrations announce every plugin, httpx every webhook request, at INFO: only their
    # problems matter to an operator.
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as err:
        print(f"{err.source}: {len(err.problems)} problem(s)", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    zones = sum(len(c.zones) for c in config.cameras)
    print(f"{args.file}: OK ({len(config.cameras)} camera(s), {zones} zone(s))")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from gridwatch.cli.analyze import run_analysis

    config = load_config(args.config)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        run_analysis(
            args.input, config, out, every_frame=args.every_frame, duration_s=args.duration,
            camera_id=args.camera, evidence_dir=args.evidence_dir,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from gridwatch.service import serve

    config = load_config(args.config)
    if args.host:
        config.api.host = args.host
    if args.port is not None:
        config.api.port = args.port
    return serve(config)


def _run(args: argparse.Namespace) -> int:
    """Run a command, turning every expected failure into a message and an exit code."""
    from gridwatch.demo import DemoFootageError
    from gridwatch.detectors.backends.base import ModelMismatchError, UnknownBackendError
    from gridwatch.detectors.backends.optional import BackendUnavailableError
    from gridwatch.evaluation.datasets import DatasetError
    from gridwatch.evaluation.splits import SplitError
    from gridwatch.ingest.errors import SourceError
    from gridwatch.models.errors import (
        ChecksumMismatchError,
        UnknownModelError,
        WeightsMissingError,
    )

    try:
        return args.func(args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"{err.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except (WeightsMissingError, ChecksumMismatchError, UnknownModelError, ModelMismatchError,
            UnknownBackendError, BackendUnavailableError) as err:
        print(f"model: {err}", file=sys.stderr)
        return EXIT_MODEL
    except (SourceError, DemoFootageError) as err:
        where = redact(getattr(args, "input", "") or "camera")
        print(f"input {where}: {redact(str(err))}", file=sys.stderr)
        return EXIT_SOURCE
    except (DatasetError, SplitError) as err:
        print(f"labelled data: {err}", file=sys.stderr)
        return EXIT_DATA


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridwatch", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (ingest, detection, incidents, API)")
    serve.add_argument("--config", type=Path, help="YAML file (default: the bundled demo)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_cmd_check_config)

    analyze = sub.add_parser("analyze", help="run the pipeline on one input, write JSON lines")
    analyze.add_argument("input", help="video file, image folder, demo:CLIP or rtsp:// URL")
    analyze.add_argument("--config", type=Path, help="zones/rules/model (default: bundled)")
    analyze.add_argument("--every-frame", action="store_true",
                         help="run the detector on every frame (accuracy work)")
    analyze.add_argument("--out", default="-", help="output file, or - for stdout")
    analyze.add_argument("--duration", type=float, help="stop after this many seconds")
    analyze.add_argument("--camera", help="camera id to report (default: matched or file name)")
    analyze.add_argument("--evidence-dir", type=Path, help="keep snapshots in this folder")
    analyze.set_defaults(func=_cmd_analyze)

    from gridwatch.cli.evaluate import add_parser as add_evaluate_parser
    from gridwatch.cli.models import add_parser as add_models_parser
    from gridwatch.cli.users import add_parser as add_users_parser

    add_evaluate_parser(sub)
    add_users_parser(sub)
    add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    return _run(args)

