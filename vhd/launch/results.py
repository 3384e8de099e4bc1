"""The files of a per-domain run root and the paper-style table built from them.

Every domain's run writes its own ``<run_root>/<domain>/result.json`` (its validation metrics),
so runs in parallel (SLURM array tasks) never write the same file. The table and
``<run_root>/domains.json`` are built from those files: at the end of an in-process
``vhd domains`` run, or by ``vhd domains --collect`` once the array's tasks are done. An array
task also keeps ``<run_root>/<domain>/slurm.status`` (state, exit status, log), which tells a
failed domain from a pending one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vhd.atomic import write_text_atomic

# Domain order of the papers' tables (HPCL Table 1 and Table 2).
DOMAINS = {
    "youtube": ["dog", "gymnastics", "parkour", "skating", "skiing", "surfing"],
    "tvsum": ["VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS"],
}
RESULT = "result.json"
STATUS = "slurm.status"
SUMMARY = "domains.json"
MANIFEST = Path("slurm") / "array.json"  # the domains (and config) submitted as job arrays
ERROR_LINE = re.compile(r"slurmstepd: error|^[\w.]*(Error|Exception|Interrupt)\b|^error:")


def write_json(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")


def write_result(run_dir: Path, metrics: dict[str, Any]) -> None:
    """One domain's metrics, as ``domains.json`` lists them under ``domains``."""
    write_json(run_dir / RESULT, metrics)


def format_table(rows: dict[str, dict[str, Any]], metric: str, average: float) -> str:
    width = max(len(name) for name in [*rows, "average"]) + 2
    lines = [f"{'domain':<{width}}{metric}"]
    lines += [f"{name:<{width}}{values[metric]:.4f}" for name, values in rows.items()]
    lines.append(f"{'average':<{width}}{average:.4f}")
    return "\n".join(lines)


def summarize(
    rows: dict[str, dict[str, Any]],
    config: str | None,
    select: str | None,
    missing: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """``domains.json``'s content (``missing``: domain -> why) and the printed table."""
    metric = next(iter(rows.values()))["main_metric"]
    average = sum(values[metric] for values in rows.values()) / len(rows)
    summary = {
        "config": config,
        "select": select,
        "metric": metric,
        "domains": rows,
        "average": average,
        "missing": missing or {},
    }
    return summary, format_table(rows, metric, average)


def paper_order(domains: Iterable[str]) -> list[str]:
    """``domains`` in the order of the papers' tables, unknown names after, alphabetically."""
    known = [name for names in DOMAINS.values() for name in names]

    def key(name: str) -> tuple[int, str]:
        return (known.index(name), "") if name in known else (len(known), name)

    return sorted(domains, key=key)


def read_manifest(run_root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((run_root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def record_domains(run_root: Path, config: str, select: str, domains: Sequence[str]) -> None:
    """Add ``domains`` to the run root's manifest (earlier submissions' domains are kept)."""
    known = list(read_manifest(run_root).get("domains") or [])
    known += [name for name in domains if name not in known]
    write_json(run_root / MANIFEST, {"config": config, "select": select, "domains": known})


def discover_domains(run_root: Path) -> list[str]:
    """The domains submitted to ``run_root`` (its manifest) and those with a result or a task
    status there (runs made without the manifest, e.g. in-process ``vhd domains``)."""
    listed = list(read_manifest(run_root).get("domains") or [])
    found = [
        folder.name
        for folder in run_root.iterdir()
        if folder.is_dir() and ((folder / RESULT).is_file() or (folder / STATUS).is_file())
    ]
    return listed + paper_order(name for name in found if name not in listed)


def read_status(path: Path) -> dict[str, str]:
    """An array task's ``slurm.status`` (``key=value`` lines); empty when there is none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def log_error(log: str | None) -> str | None:
    """The last error line of the latest attempt in a task's log (requeued attempts append)."""
    if not log:
        return None
    try:
        with open(log, "rb") as stream:
            stream.seek(0, 2)
            stream.seek(max(0, stream.tell() - 65536))
            lines = stream.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    starts = [index for index, line in enumerate(lines) if line.startswith("job ")]
    latest = lines[starts[-1] :] if starts else lines
    errors = [line.strip() for line in latest if ERROR_LINE.search(line)]
    return errors[-1][:300] if errors else None


def diagnose(run_dir: Path) -> tuple[str, str]:
    """Why a domain has no result: ``("failed" | "missing", reason)``."""
    status = read_status(run_dir / STATUS)
    if not status:
        return "missing", f"no {RESULT} and no task has started it (pending, or not submitted)"
    task, log = status.get("job", "?"), status.get("log")
    where = f"; see {log}" if log else ""
    state = status.get("state")
    if state == "failed":
        return "failed", f"task {task} exited with status {status.get('exit', '?')}{where}"
    if state == "done":
        return "failed", f"task {task} ended without writing {RESULT}{where}"
    error = log_error(log)
    if error:
        return "failed", f"task {task}: {error}{where}"
    return "missing", f"task {task} has not finished (still running, or killed){where}"


def read_result(path: Path) -> dict[str, Any] | str:
    """A domain's metrics, or why they cannot be read."""
    try:
        result = json.loads(path.read_text())
    except OSError as error:
        return f"cannot read {path} ({error.strerror})"
    except ValueError:
        return f"{path} is not valid JSON"
    if not isinstance(result, dict) or result.get("main_metric") not in result:
        return f"{path} holds no main_metric value"
    return result


def collect(
    run_root: Path, domains: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """The finished domains' metrics and the others' ``(state, reason)``."""
    rows: dict[str, dict[str, Any]] = {}
    problems: dict[str, tuple[str, str]] = {}
    for domain in domains:
        path = run_root / domain / RESULT
        result = read_result(path) if path.is_file() else None
        if isinstance(result, dict):
            rows[domain] = result
        else:
            problems[domain] = ("failed", result) if result else diagnose(run_root / domain)
    metrics = {values["main_metric"] for values in rows.values()}
    if len(metrics) > 1:  # a table needs one metric: keep the first domain's
        metric = next(iter(rows.values()))["main_metric"]
        for domain in [name for name, values in rows.items() if values["main_metric"] != metric]:
            other = rows.pop(domain)["main_metric"]
            problems[domain] = ("failed", f"its main metric is {other}, not {metric}")
    return rows, problems
