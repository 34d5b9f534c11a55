"""``stillroom export``: the adapter, a merged 16-bit model, or a GGUF with an Ollama Modelfile."""

from __future__ import annotations

import argparse
import json
import sys

from engine.i18n import _
from tui.commands.chat import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help=_("export a run's student: adapter, merged model or GGUF"),
        description=_(
            "adapter: the LoRA adapter, tokenizer and a model card. merged: a 16-bit model in "
            "safetensors that plain transformers loads. gguf: a GGUF file plus an Ollama "
            "Modelfile (needs llama.cpp's converter: --llama-cpp DIR or LLAMA_CPP_DIR). merged "
            "and gguf are checked against base + adapter on a few prompts; an export that "
            "answers differently exits 1. Nothing half-written is left behind, and nothing "
            "Stillroom did not write is replaced."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--format", required=True, choices=("adapter", "merged", "gguf"))
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=_(
            "a new or empty folder, or an earlier export of this format (default: "
            "RUN/export/FORMAT)"
        ),
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=_("replace an earlier Stillroom export of another format (never other folders)"),
    )
    parser.add_argument(
        "--llama-cpp",
        metavar="DIR",
        help=_(
            "the llama.cpp checkout whose converter makes the GGUF (default: $LLAMA_CPP_DIR, "
            "else llama.cpp's converter on PATH)"
        ),
    )
    parser.add_argument(
        "--gguf-type", default="f16", choices=("f16", "bf16", "q8_0"), help=_("default: f16")
    )
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO",
        default="",
        help=_("upload to this private hub repo (HF_TOKEN)"),
    )
    parser.add_argument(
        "--json", action="store_true", help=_("print where it went and the parity check as JSON")
    )
    parser.set_defaults(func=run)


def _as_json(result) -> dict:
    parity = result.parity
    return {
        "format": result.format,
        "path": str(result.path),
        "parity": None
        if parity is None
        else {"prompts": len(parity.prompts), "differing": parity.differing, "note": parity.note},
        "uploaded_to": result.uploaded_to or None,
    }


def run(args: argparse.Namespace) -> int:
    from engine.chat import resolve_run
    from engine.export import cleared_lines, export, find_gguf_converter
    from engine.stdout import chatter_to_stderr

    run_dir = resolve_run(args.run, args.runs_dir)
    converter = None
    if args.format == "gguf":
        converter = find_gguf_converter(args.llama_cpp)
        where = sys.stderr if args.json else sys.stdout
        print(_("converter: {path}").format(path=converter), flush=True, file=where)
    with chatter_to_stderr():
        result = export(
            run_dir,
            args.format,
            args.out,
            gguf_type=args.gguf_type,
            push_to_hub=args.push_to_hub,
            force=args.force,
            converter=converter,
        )
    for line in cleared_lines(result):
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(_as_json(result), indent=2, ensure_ascii=False))
        return 1 if result.flagged else 0
    print(_("exported {format}: {path}").format(format=result.format, path=result.path))
    if result.parity:
        parity = result.parity
        if parity.note:
            print(_("parity: {note}").format(note=parity.note))
        elif parity.differing:
            message = _(
                "the export answers {differing} of {total} prompts differently from "
                "base + adapter; see {path}"
            ).format(
                differing=parity.differing,
                total=len(parity.prompts),
                path=result.path / "parity.json",
            )
            print(f"stillroom: {message}", file=sys.stderr)
        else:
            print(
                _("parity: same greedy answers as base + adapter on {count} prompts").format(
                    count=len(parity.prompts)
                )
            )
    if result.uploaded_to:
        print(_("uploaded: {where}").format(where=result.uploaded_to))
    return 1 if result.flagged else 0
