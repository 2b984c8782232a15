"""`/v1/imports`: bring in a partner's own list of accounts (CSV), watch it, download its report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.deps import DeciderDep, ReaderDep, SessionDep, StateDep
from app.errors import AppError
from app.imports import csv_rows, service
from app.imports.schemas import ImportOut
from app.kit.inputs import RowId, Text

router = APIRouter(prefix="/v1/imports", tags=["imports"])

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
FILENAME_MAX = 200


class PayloadTooLarge(AppError):
    status = 413
    type_slug = "payload-too-large"
    title = "The request body is too large"


class UnsupportedMediaType(AppError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    too_large = PayloadTooLarge(
        f"an import file may have at most {limit} bytes (IMPORTS_MAX_BYTES)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                # The file's bytes (UTF-8 CSV), at most IMPORTS_MAX_BYTES, whatever MAX_BODY_BYTES.
                "schema": {"type": "string", "format": "binary"},
                "example": "encoded_account_id,login_name,wish,note\r\n"
                "a07e1lxqqqo0,,,\r\n,jack_box01,approved,\r\n"
                "a08e1izvh8t9,,billing_approved,signed the billing addendum\r\n",
            }
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=ImportOut,
    summary="Bring in a CSV of accounts (ids or login names, optional wishes), in the background",
    openapi_extra=_CSV_BODY,
    responses={
        413: {"description": "the file is larger than IMPORTS_MAX_BYTES"},
        415: {"description": "the body is not sent as text/csv"},
    },
)
async def create_import(
    *,
    request: Request,
    response: Response,
    principal: DeciderDep,
    session: SessionDep,
    state: StateDep,
    dry_run: Annotated[
        bool, Query(description="compute every row's outcome, change no client")
    ] = False,
    filename: Annotated[str | None, Query(max_length=FILENAME_MAX), Text] = None,
) -> ImportOut:
    """Store the file's rows and queue their run; `GET /v1/imports/{id}` shows its progress."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise UnsupportedMediaType("send the file as the body with Content-Type: text/csv")
    limits = state.settings.imports
    rows = csv_rows.parse(await _body(request, limits.max_bytes), max_rows=limits.max_rows)
    job = await service.create(
        session, rows, filename=filename, requested_by=principal.name, dry_run=dry_run
    )
    response.headers["Location"] = f"/v1/imports/{job.id}"
    return service.out(job)


@router.get(
    "/{import_id}",
    response_model=ImportOut,
    summary="An import's progress and outcomes",
    responses={404: {"description": "no such import"}},
)
async def get_import(import_id: RowId, _: ReaderDep, session: SessionDep) -> ImportOut:
    return service.out(await service.get(session, import_id))


@router.get(
    "/{import_id}/report",
    summary="The per-row report (CSV): line, the row, its outcome and why",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        404: {"description": "no such import"},
    },
)
async def import_report(
    import_id: RowId, _: ReaderDep, session: SessionDep, state: StateDep
) -> StreamingResponse:
    await service.get(session, import_id)
    return StreamingResponse(
        service.report_csv(state.sessionmaker, import_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}.csv"'},
    )
