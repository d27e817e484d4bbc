//! The experts' opinion letter (验收合格意见书, PROTOCOL.md §15): drafted, edited and issued by
//! the county office here; reviewed and signed by the experts through sync.
//!
//! Like the assembled record, the body is the domain document itself: its `content_hash`
//! covers exactly these members.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiJson, ErrorBody, Result},
    exports::letter_pdf,
    identity::auth::AuthUser,
    letters::{self, AssembledLetter, LetterText},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(draft_letter, round_letter))
        .routes(routes!(get_letter, update_letter))
        .routes(routes!(issue_letter))
        .routes(routes!(letter_pdf))
}

/// Draft the opinion letter of a 注销 round whose record passed and is fully signed (county
/// office). The panel needs at least three experts and one of every specialty; names and
/// specialties come from their accounts. The experts then see it on their phones.
#[utoipa::path(post, path = "/rounds/{id}/letter", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round id")),
    request_body = LetterText,
    responses((status = 201, body = AssembledLetter),
              (status = 400, description = "invalid text or panel (the field is named)",
               body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "no such round visible to the caller", body = ErrorBody),
              (status = 409, description = "`letter_exists`, or `record_not_passed` (not a 注销 \
               round, or its record did not pass or is not fully signed)", body = ErrorBody)))]
async fn draft_letter(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(text): ApiJson<LetterText>,
) -> Result<(StatusCode, Json<AssembledLetter>)> {
    Ok((
        StatusCode::CREATED,
        Json(letters::draft(&state, &caller, id, text).await?),
    ))
}

/// The opinion letter of a round.
#[utoipa::path(get, path = "/rounds/{id}/letter", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "round id")),
    responses((status = 200, body = AssembledLetter),
              (status = 401, body = ErrorBody),
              (status = 404, description = "the round has no letter, or the caller may not see it",
               body = ErrorBody)))]
async fn round_letter(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AssembledLetter>> {
    Ok(Json(letters::of_round(&state, &caller, id).await?))
}

/// The letter as one document: its text, the experts' words (each checked again: the device
/// key, and whether it is about the current text or superseded), per specialty who signed,
/// whether it can be issued and why not, and its content hash.
#[utoipa::path(get, path = "/letters/{id}", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "letter id")),
    responses((status = 200, body = AssembledLetter),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such letter visible to the caller", body = ErrorBody)))]
async fn get_letter(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AssembledLetter>> {
    Ok(Json(letters::assemble(&state, &caller, id).await?))
}

/// A new version of the letter's text (county office), until it is issued. A changed text has
/// a new hash: every word given so far stops counting and the panel signs again.
#[utoipa::path(put, path = "/letters/{id}", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "letter id")),
    request_body = LetterText,
    responses((status = 200, body = AssembledLetter),
              (status = 400, description = "invalid text or panel", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`letter_issued`, or `record_not_passed`",
               body = ErrorBody)))]
async fn update_letter(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    ApiJson(text): ApiJson<LetterText>,
) -> Result<Json<AssembledLetter>> {
    Ok(Json(letters::update(&state, &caller, id, text).await?))
}

/// Issue the letter (county office): every required specialty has signed the current text, no
/// panel expert declined it, and the record is still the one it was drafted from, passed and
/// fully signed. Nothing changes it afterwards.
#[utoipa::path(post, path = "/letters/{id}/issue", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "letter id")),
    responses((status = 200, body = AssembledLetter),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`letter_incomplete` (the message lists what is \
               missing), or `letter_issued`", body = ErrorBody)))]
async fn issue_letter(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AssembledLetter>> {
    Ok(Json(letters::issue(&state, &caller, id).await?))
}

/// The letter as a PDF laid out like a government letter (A4): title and number, the sections
/// 一 to 七 (basis, organisation with the panel, method, situation, opinions, problems,
/// conclusion), the panel's signature table with each expert's handwriting and whether the
/// word counts (有效 / 已失效 / 拒签 with the reason), the organiser and date; 第 x 页 共 y 页 and
/// the letter's content hash in every footer, 草稿 on every page until it is issued. Same
/// visibility as the JSON letter.
#[utoipa::path(get, path = "/letters/{id}/letter.pdf", tag = "letters", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "letter id")),
    responses((status = 200, content_type = "application/pdf",
               description = "the PDF (`Content-Disposition: inline`)",
               headers(("Content-Disposition" = String))),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such letter visible to the caller", body = ErrorBody),
              (status = 503, description = "no CJK font on the server (`font_missing`: the \
               message names the font and the package to install)", body = ErrorBody)))]
async fn letter_pdf(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let pdf = letter_pdf::letter_pdf(&state, &caller, id).await?;
    super::pdf_response(&format!("letter-{id}.pdf"), &pdf.filename, pdf.bytes)
}
