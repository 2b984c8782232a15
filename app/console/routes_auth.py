"""Signing in (password mode) and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.console.deps import FormDep, KitDep, SessionDep, Visitor, VisitorDep
from app.console.forms import SignInForm, parse
from app.console.kit import ConsoleSession, Flash
from app.console.rendering import prefix, redirect, render
from app.people import service as people_service
from app.settings import ConsoleAuth

router = APIRouter()

WRONG = "The email or the password is wrong, or this person may not use the console."


def _safe_next(request: Request, target: str | None) -> str:
    """A console path to go to after signing in; anything else goes to the overview."""
    home = prefix(request) + "/"
    if not target:
        return home
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or "\\" in target
        or not target.startswith(prefix(request) + "/")
        or target.startswith("//")
    ):
        return home
    return target


@router.get("/sign-in")
async def sign_in_page(request: Request, visitor: VisitorDep, kit: KitDep) -> Response:
    if visitor.role is not None:
        return RedirectResponse(_safe_next(request, request.query_params.get("next")), 303)
    return render(
        request,
        "sign_in.html",
        visitor,
        {"values": {"next": request.query_params.get("next", "")}},
        status_code=401 if kit.config.auth is ConsoleAuth.PROXY else 200,
    )


@router.post("/sign-in")
async def sign_in(
    request: Request, visitor: VisitorDep, form: FormDep, kit: KitDep, db: SessionDep
) -> Response:
    if kit.config.auth is ConsoleAuth.PROXY:
        return render(request, "sign_in.html", visitor, status_code=400)
    data, errors, values = parse(SignInForm, form)
    values.pop("password", None)
    if data is not None:
        person = await people_service.sign_in(db, data.email, data.password)
        if person is not None:
            kit.queue_session(request, ConsoleSession.fresh(person.email))
            return RedirectResponse(_safe_next(request, data.next), status_code=303)
        errors = {"password": WRONG}
    return render(
        request, "sign_in.html", visitor, {"errors": errors, "values": values}, status_code=400
    )


@router.post("/sign-out")
async def sign_out(request: Request, visitor: VisitorDep, form: FormDep, kit: KitDep) -> Response:
    anonymous = ConsoleSession.fresh()
    kit.queue_session(request, anonymous)
    if kit.config.auth is ConsoleAuth.PROXY:
        if kit.config.proxy_sign_out_url:
            return RedirectResponse(kit.config.proxy_sign_out_url, status_code=303)
        return render(request, "signed_out.html", Visitor(anonymous))
    return redirect(request, "/sign-in", flash=Flash("ok", "You are signed out."))
