//! The demo's route table, its robots.txt, and the redirect for store URLs
//! typed without their trailing slash.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use super::catalog::Store;
use super::gamevault::{gamevault_game, gamevault_listing};
use super::pixelbay::{pixelbay_game, pixelbay_listing};
use super::render::not_found;
use super::retroshelf::{
    retroshelf_first_page, retroshelf_game, retroshelf_page, retroshelf_private,
};

/// The robots.txt served at `/robots.txt`; it hides RetroShelf's staff area.
pub const ROBOTS_TXT: &str =
    "User-agent: *\nDisallow: /api/\nDisallow: /admin/\nDisallow: /demo/retroshelf/private/\n";

/// Registers the demo store routes under `/demo/` and `GET /robots.txt`.
/// Needs `web::Data<DemoState>` in the app; `/static/demo.css` is served by the caller.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/robots.txt", web::get().to(robots)).service(
        web::scope("/demo")
            .route("/pixelbay/", web::get().to(pixelbay_listing))
            .route("/pixelbay/games/{slug}", web::get().to(pixelbay_game))
            .route("/gamevault/", web::get().to(gamevault_listing))
            .route("/gamevault/p/{slug}", web::get().to(gamevault_game))
            .route("/retroshelf/", web::get().to(retroshelf_first_page))
            .route("/retroshelf/page/{page}", web::get().to(retroshelf_page))
            .route("/retroshelf/item/{slug}", web::get().to(retroshelf_game))
            .route(
                "/retroshelf/private/{name}",
                web::get().to(retroshelf_private),
            )
            .route("/{store}", web::get().to(store_root_redirect))
            .default_service(web::to(not_found)),
    );
}

async fn robots() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(ROBOTS_TXT)
}

/// `/demo/pixelbay` → `/demo/pixelbay/`, so a hand-typed URL still works.
async fn store_root_redirect(req: HttpRequest, store: web::Path<String>) -> HttpResponse {
    match Store::from_slug(&store) {
        Some(s) => HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, format!("/demo/{}/", s.slug())))
            .finish(),
        None => not_found(req).await,
    }
}
