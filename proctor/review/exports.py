"""Exports: the sitting's verdicts as CSV (with the results where the exam flow scored the
papers), and a candidate's evidence pack — a zip holding an HTML report (timeline, alerts,
verdicts, risk), every evidence file, ``manifest.json`` with each file's sha256 and the
candidate's audit-chain entries, and ``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` checks
the files). Each file is re-hashed while it is packed; a file that no longer matches its
recorded sha256 is packed anyway and flagged, never silently passed."""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor import csvsafe
from proctor.evidence.storage import EvidenceStorage
from proctor.evidence.zones import local_iso, localize, zone_of
from proctor.review import optional
from proctor.review.timeline import get_candidate, get_sitting, iso, review_queue, timeline
from proctor.review.verdicts import CATEGORIES, OUTCOMES
from proctor.store.order import roster_order
from proctor.store.tables import AuditEntry, Evidence, utcnow

CSV_COLUMNS = [
    "sitting_id",
    "sitting",
    "candidate_id",
    "name",
    "id_number",
    "risk_score",
    "alerts",
    "alerts_confirmed",
    "alerts_dismissed",
    "alerts_unreviewed",
    "verdict",
    "category",
    "note",
    "reviewer",
    "decided_at",
]
RESULT_COLUMNS = ["total_score", "passed", "submitted_at"]


async def verdicts_csv(db: AsyncSession, sitting_id: int) -> str:
    queue = await review_queue(db, sitting_id)
    attempts = {a.candidate_id: a for a in await optional.attempts(db, sitting_id=sitting_id)}
    with_results = any(a.total_score is not None for a in attempts.values())
    out = io.StringIO()
    out.write("\ufeff")  # spreadsheet programs then read UTF-8 (Chinese names)
    writer = csvsafe.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS + (RESULT_COLUMNS if with_results else []))
    sitting = queue["sitting"]
    zone = zone_of(await get_sitting(db, sitting_id))
    order = await roster_order(db, sitting_id)  # by seat, then import order (issue 23)
    for row in sorted(queue["candidates"], key=lambda r: order(r["candidate"]["id"])):
        c, v, a = row["candidate"], row["verdict"], row["alerts"]
        line = [
            sitting["id"],
            sitting["name"],
            c["id"],
            c["name"],
            c["id_number"],
            row["risk"]["score"],
            a["total"],
            a["confirmed"],
            a["dismissed"],
            a["unreviewed"],
            v["outcome"] if v else "not_reviewed",
            (v or {}).get("category") or "",
            (v or {}).get("note") or "",
            (v or {}).get("reviewer") or "",
            local_iso((v or {}).get("decided_at"), zone) or "",
        ]
        if with_results:
            att = attempts.get(c["id"])
            line += [
                "" if att is None or att.total_score is None else att.total_score,
                "" if att is None or att.passed is None else ("yes" if att.passed else "no"),
                local_iso(att.submitted_at, zone) if att and att.submitted_at else "",
            ]
        writer.writerow(line)
    return out.getvalue()


@dataclass(frozen=True)
class PackFile:
    arcname: str
    source: Path | None  # None: missing from storage
    sha256: str  # as recorded
    evidence: dict[str, Any]


def _ext(relpath: str) -> str:
    return PurePosixPath(relpath).suffix.lstrip(".") or "bin"


async def evidence_pack(
    db: AsyncSession,
    storage: EvidenceStorage,
    candidate_id: int,
    dest: Path,
    generated_by: str,
) -> dict[str, Any]:
    """Write the candidate's pack to ``dest`` (a zip); returns its manifest."""
    candidate = await get_candidate(db, candidate_id)
    zone = zone_of(await get_sitting(db, candidate.sitting_id))
    tl = await timeline(db, candidate_id)
    files: list[PackFile] = []
    for e in await db.scalars(
        select(Evidence).where(Evidence.candidate_id == candidate_id).order_by(Evidence.id)
    ):
        arc = f"evidence/{e.id:06d}-{e.kind}-{e.view}.{_ext(e.relpath)}"
        files.append(
            PackFile(
                arc,
                storage.find(e.relpath),
                e.sha256,
                {
                    "evidence_id": e.id,
                    "kind": e.kind,
                    "view": e.view,
                    "alert_id": e.alert_id,
                    "mime": e.mime,
                    "captured_at": local_iso(e.captured_at, zone),
                    # a recorded segment's end (else None)
                    "ended_at": local_iso(e.ended_at, zone),
                },
            )
        )
    if candidate.photo_relpath and candidate.photo_sha256:
        files.append(
            PackFile(
                f"evidence/registered-photo.{_ext(candidate.photo_relpath)}",
                storage.find(candidate.photo_relpath),
                candidate.photo_sha256,
                {"kind": "registered_photo"},
            )
        )
    audit = [
        {
            "seq": e.seq,
            "at": iso(e.at),
            "actor": e.actor,
            "kind": e.kind,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "payload": json.loads(e.payload),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.candidate_id == candidate_id)
            .order_by(AuditEntry.seq)
        )
    ]
    meta = {
        "format": "proctor-evidence-pack/1",
        "generated_at": iso(utcnow()),
        "generated_by": generated_by,
        "candidate": tl["candidate"],
        "sitting": tl["sitting"],
        "verdict": tl["verdict"],
        "risk_score": tl["risk"]["score"],
    }
    # times in the sitting's time zone with the offset (issue 23), the audit entries' too
    # (the chain hashes UTC: proctor audit verify reads them from the database)
    meta = localize(meta, zone)
    tl = localize(tl, zone)
    audit = [{**a, "at": local_iso(a["at"], zone)} for a in audit]
    return await asyncio.to_thread(_write_pack, dest, meta, tl, files, audit)


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write_pack(
    dest: Path,
    meta: dict[str, Any],
    tl: dict[str, Any],
    files: list[PackFile],
    audit: list[dict[str, Any]],
) -> dict[str, Any]:
    entries = []
    sums = []
    by_evidence: dict[int, dict[str, Any]] = {}
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in files:
            data = _read(f.source)
            entry: dict[str, Any] = {"path": f.arcname, "recorded_sha256": f.sha256, **f.evidence}
            if data is None:
                entry.update(present=False, sha256=None, size=0, matches_record=False)
            else:
                digest = hashlib.sha256(data).hexdigest()
                z.writestr(f.arcname, data, compress_type=zipfile.ZIP_STORED)
                sums.append(f"{digest}  {f.arcname}")
                entry.update(
                    present=True, sha256=digest, size=len(data), matches_record=digest == f.sha256
                )
            entries.append(entry)
            if "evidence_id" in f.evidence:
                by_evidence[f.evidence["evidence_id"]] = entry
        report = _html(meta, tl, entries, by_evidence, audit).encode()
        z.writestr("index.html", report)
        sums.append(f"{hashlib.sha256(report).hexdigest()}  index.html")
        manifest = {
            **meta,
            "files": entries,
            "all_files_match": all(e["matches_record"] for e in entries),
            "audit": audit,
        }
        manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        z.writestr("manifest.json", manifest_bytes)
        sums.append(f"{hashlib.sha256(manifest_bytes).hexdigest()}  manifest.json")
        z.writestr("SHA256SUMS", "\n".join(sums) + "\n")
    return manifest


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _media(entry: dict[str, Any] | None) -> str:
    if not entry or not entry.get("present"):
        return '<span class="bad">file missing</span>'
    path = _e(entry["path"])
    flag = "" if entry["matches_record"] else '<br><span class="bad">ALTERED: sha256 differs</span>'
    if str(entry.get("mime", "")).startswith("video/"):
        return f'<video controls preload="metadata" src="{path}"></video>{flag}'
    return f'<a href="{path}"><img src="{path}" alt="{_e(entry.get("kind"))}"></a>{flag}'


def _html(
    meta: dict[str, Any],
    tl: dict[str, Any],
    entries: list[dict[str, Any]],
    by_evidence: dict[int, dict[str, Any]],
    audit: list[dict[str, Any]],
) -> str:
    c, s, v = meta["candidate"], meta["sitting"], meta["verdict"]
    verdict = "not reviewed 未复核"
    if v:
        verdict = OUTCOMES.get(v["outcome"], v["outcome"])
        if v.get("category"):
            verdict += f" — {CATEGORIES.get(v['category'], v['category'])}"
        verdict += f" ({v['reviewer']}, {v['decided_at']}): {v['note']}"
    alerts = "".join(
        "<tr>"
        f"<td>{a['id']}</td><td>{_e(a['type'])}</td><td>{_e(a['severity'])}</td>"
        f"<td>{_e(a['view'])}</td><td>{_e(a['at'])}</td><td>{_e(a['raised_at'])}</td>"
        f"<td>{_e(a['message'])}</td>"
        f"<td>{_e((a['verdict'] or {}).get('decision', 'not reviewed'))} "
        f"{_e((a['verdict'] or {}).get('note', ''))}</td>"
        f"<td>{''.join(_media(by_evidence.get(x['id'])) for x in a['evidence'])}</td>"
        "</tr>"
        for a in tl["alerts"]
    )
    points = "".join(
        f"<tr><td>{p['alert_id']}</td><td>{_e(p['type'])}</td><td>{p['weight']}</td>"
        f"<td>{p['severity_factor']}</td><td>{p['duration_factor']}</td>"
        f"<td>{p['views_factor']}</td><td>{p['repeat_factor']}</td>"
        f"<td>{_e(p['decision'] or '')}</td><td>{p['points']}</td></tr>"
        for p in tl["risk"]["alerts"]
    )
    items = "".join(
        f"<tr><td>{_e(i['at'])}</td><td>{_e(i['kind'])}</td><td>{_e(i.get('type'))}</td>"
        f"<td>{_e(i.get('view', ''))}</td><td>{_e(_describe(i))}</td>"
        f"<td>{_media(by_evidence.get(i['id'])) if i['kind'] == 'evidence' else ''}</td></tr>"
        for i in tl["items"]
    )
    files = "".join(
        f"<tr><td>{_e(f['path'])}</td><td><code>{_e(f['sha256'])}</code></td>"
        f"<td>{'yes' if f['matches_record'] else '<b class=bad>NO</b>'}</td></tr>"
        for f in entries
    )
    chain = "".join(
        f"<tr><td>{a['seq']}</td><td>{_e(a['at'])}</td><td>{_e(a['actor'])}</td>"
        f"<td>{_e(a['kind'])}</td><td><code>{_e(a['hash'])}</code></td></tr>"
        for a in audit
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evidence pack 证据包 — {_e(c["name"])}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;width:100%}}
td,th{{border:1px solid #bbb;padding:4px 6px;vertical-align:top;text-align:left}}
img,video{{max-width:320px;display:block}} code{{font-size:11px;word-break:break-all}}
.bad{{color:#b00020;font-weight:bold}}
</style></head><body>
<h1>Evidence pack 证据包</h1>
<p><b>Candidate 考生</b>: {_e(c["name"])} ({_e(c["id_number"])}), id {c["id"]}<br>
<b>Sitting 场次</b>: {_e(s["name"])} ({_e(s["kind"])}),
{_e(s["starts_at"])} – {_e(s["ends_at"])}<br>
<b>Verdict 复核结论</b>: {_e(verdict)}<br>
<b>Risk score 风险分</b>: {meta["risk_score"]} (type weight × severity × duration × views
× repeat; dismissed alerts count 0)<br>
<b>Generated 生成</b>: {_e(meta["generated_at"])} by {_e(meta["generated_by"])}</p>
<h2>Alerts 告警</h2>
<table><tr><th>id</th><th>type</th><th>severity</th><th>view</th><th>started</th>
<th>raised</th><th>message</th><th>reviewer's decision</th><th>evidence</th></tr>{alerts}</table>
<h2>How the risk score was made 风险分构成</h2>
<table><tr><th>alert</th><th>type</th><th>weight</th><th>severity</th><th>duration</th>
<th>views</th><th>repeat</th><th>decision</th><th>points</th></tr>{points}</table>
<h2>Timeline 时间线</h2>
<table><tr><th>at</th><th>kind</th><th>type</th><th>view</th><th>what</th><th></th></tr>
{items}</table>
<h2>Files and their sha256 文件摘要</h2>
<table><tr><th>file</th><th>sha256</th><th>matches the record</th></tr>{files}</table>
<h2>Audit chain entries 审计链</h2>
<table><tr><th>seq</th><th>at</th><th>actor</th><th>kind</th><th>hash</th></tr>{chain}</table>
</body></html>
"""


def _describe(item: dict[str, Any]) -> str:
    kind = item["kind"]
    if kind == "alert":
        return item.get("message", "")
    if kind == "staff_action":
        bits = [item.get("text") or item.get("reason") or "", f"by {item.get('by')}"]
        if item.get("seconds"):
            bits.append(f"{item['seconds']} s")
        if item.get("seen_at"):
            bits.append(f"seen {item['seen_at']}")
        return " · ".join(b for b in bits if b)
    if kind == "connection_loss":
        state = "restored" if item.get("restored") else "not restored"
        return f"{item.get('seconds')} s, {state} {item.get('end') or ''}"
    if kind == "event":
        return json.dumps(item.get("data") or {}, ensure_ascii=False)
    return item.get("sha256", "")
