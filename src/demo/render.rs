//! How every store handler answers: a rendered page, the 404 page, or a 500;
//! and the Steam link the game pages carry.

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::catalog::Offer;
use super::pages::NotFound;

pub(super) async fn not_found(req: HttpRequest) -> HttpResponse {
    let body = NotFound {
        path: req.path().to_owned(),
    }
    .render()
    // The 404 page itself failing to render must not hide the 404.
    .unwrap_or_else(|_| "<!DOCTYPE html><title>Not found</title><h1>Not found</h1>".to_owned());
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

pub(super) fn html(result: Result<String, askama::Error>) -> HttpResponse {
    match result {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => server_error(),
    }
}

pub(super) fn server_error() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/html; charset=utf-8")
        .body("<!DOCTYPE html><title>Error</title><h1>The demo store is broken</h1>")
}

pub(super) fn steam_url(offer: &Offer) -> Option<String> {
    offer
        .game
        .steam_id
        .as_ref()
        .map(|id| format!("https://store.steampowered.com/app/{id}/"))
}
