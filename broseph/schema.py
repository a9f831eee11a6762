"""
JSON Schema of every job type's params, generated from the payload models.

The payload models are the one definition of a job's params; other languages get them through
this module: `python -m broseph.schema --out clients/typescript/schema` writes one schema per job
type (the TypeScript client's types are generated from those files by
clients/typescript/scripts/generate.sh, which runs this first). The schemas use the contract's
snake_case names, as `broseph.enqueue` takes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from broseph import jobs

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def job_schema(name: str) -> dict[str, Any]:
    """
    The JSON Schema of one job type's params (pydantic's validation-mode schema).
    """
    schema = jobs.get(name).payload.model_json_schema()
    return {"$schema": DIALECT, **schema, "title": name}


def all_schemas() -> dict[str, dict[str, Any]]:
    """
    Every catalogued job type's schema, by job type name (sorted).
    """
    return {name: job_schema(name) for name in sorted(jobs.CATALOGUE)}


def render(schema: dict[str, Any]) -> str:
    """
    The schema as committed: stable key order from the model, two-space indent, final newline.
    """
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(out_dir: Path) -> list[Path]:
    """
    Write `<JobType>.json` for every job type into out_dir and delete schemas of job types that
    no longer exist, so the directory always mirrors the catalogue. Returns the files written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    schemas = all_schemas()
    written = []
    for name, schema in schemas.items():
        path = out_dir / f"{name}.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in schemas:
            stale.unlink()
    return written


def main(
    out: Annotated[Path, typer.Option(help="Directory for the <JobType>.json files.")],
) -> None:
    """
    Write the JSON Schema of every job type's params, one file per job type.
    """
    for path in write(out):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
