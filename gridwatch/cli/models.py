"""`gridwatch models list|verify|fetch|dynamic|export`: the operator's view of the weights.

`verify` is what to run before going offline: it says, for every manifest model, whether a
copy is present and matches its pinned sha256, without downloading anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridwatch.models.errors import ChecksumMismatchError
from gridwatch.models.fetch import verify_file
from gridwatch.models.manifest import load_manifest
from gridwatch.models.weights import entry_dirs, resolve_weights

EXIT_MODEL = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list, verify, fetch or export detector weights")
    actions = models.add_subparsers(dest="models_command", required=True)

    listing = actions.add_parser("list", help="the models of the manifest")
    listing.set_defaults(func=_cmd_list)

    verify = actions.add_parser("verify", help="checksum status of each manifest model")
    verify.add_argument("names", nargs="*", help="models to check (default: all)")
    verify.add_argument("--dir", type=Path, help="folder searched first (as model.dir)")
    verify.set_defaults(func=_cmd_verify)

    fetch = actions.add_parser("fetch", help="download missing weights, verified")
    fetch.add_argument("names", nargs="*", help="models to fetch (default: all)")
    fetch.add_argument("--dir", type=Path, help="folder to download into (default: cache)")
    fetch.set_defaults(func=_cmd_fetch)

    dynamic = actions.add_parser(
        "dynamic", help="write a dynamic batch/size copy of a graph into the cache"
    )
    dynamic.add_argument("name", help="manifest model or .onnx path")
    dynamic.add_argument("--batch-only", action="store_true",
                         help="keep the input size fixed; only the batch becomes dynamic")
    dynamic.add_argument("--out", type=Path, help="folder (default: the model cache)")
    dynamic.set_defaults(func=_cmd_dynamic)

    export = actions.add_parser(
        "export", help="export an Ultralytics .pt to ONNX/OpenVINO (needs the ultralytics extra)"
    )
    export.add_argument("weights", type=Path, help="Ultralytics checkpoint (.pt)")
    export.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    export.add_argument("--imgsz", type=int, default=640, help="square input size")
    export.add_argument("--dynamic", action="store_true", help="dynamic batch and size")
    export.add_argument("--out", type=Path, help="folder (default: beside the checkpoint)")
    export.set_defaults(func=_cmd_export)


def _names(requested: list[str]) -> list[str]:
    manifest = load_manifest()
    for name in requested:
        manifest.get(name)  # UnknownModelError lists the known ones
    return requested or list(manifest.models)


def _cmd_list(args: argparse.Namespace) -> int:
    for entry in load_manifest().models.values():
        width, height = entry.input_size
        print(f"{entry.name}  {entry.file}  {width}x{height} {entry.output_format}  "
              f"backend {entry.backend}  {entry.bytes} bytes  {entry.licence}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """One line per model: ok, MISMATCH (a copy that is not the pinned file) or missing."""
    manifest = load_manifest()
    problems = 0
    for name in _names(args.names):
        entry = manifest.get(name)
        dirs = entry_dirs(entry, args.dir)
        copies = [d / entry.file for d in dirs if (d / entry.file).is_file()]
        if not copies:
            problems += 1
            print(f"{name}: missing (no {entry.file} in "
                  f"{', '.join(str(d) for d in dirs)}; "
                  f"`gridwatch models fetch {name}` "
                  f"{'makes' if entry.derived_from else 'downloads'} it)")
            continue
        for path in copies:
            try:
                verify_file(path, entry.sha256)
            except ChecksumMismatchError as err:
                problems += 1
                print(f"{name}: MISMATCH {path}: expected sha256 {err.expected}, "
                      f"got {err.actual}")
            else:
                print(f"{name}: ok {path} (sha256 {entry.sha256[:16]}...)")
    return EXIT_MODEL if problems else 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    for name in _names(args.names):
        path = resolve_weights(name, args.dir, manifest=manifest, download=True)
        print(f"{name}: ok {path}")
    return 0


def _cmd_dynamic(args: argparse.Namespace) -> int:
    from gridwatch.models.errors import ExportError
    from gridwatch.models.fetch import file_sha256
    from gridwatch.models.weights import dynamic_copy

    try:
        path = dynamic_copy(args.name, spatial=not args.batch_only, out_dir=args.out)
    except ExportError as err:
        print(f"model: {err}", file=sys.stderr)
        return EXIT_MODEL
    print(f"{path} (sha256 {file_sha256(path)}, verified at batch 2)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gridwatch.detectors.backends.ultralytics_export import export_ultralytics
    from gridwatch.models.errors import ExportError

    try:
        result = export_ultralytics(
            args.weights, fmt=args.format, imgsz=args.imgsz, dynamic=args.dynamic,
            out_dir=args.out,
        )
    except ExportError as err:
        print(f"model: {err}", file=sys.stderr)
        return EXIT_MODEL
    print(f"# wrote {result.path}")
    print(result.snippet(), end="")
    return 0
