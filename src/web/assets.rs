//! Static files, compiled into the binary so the site works from any working
//! directory and offline.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// (path under /static/, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "site.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/site.css"),
    ),
    (
        "demo.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/demo.css"),
    ),
    (
        "chat.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/chat.css"),
    ),
    (
        "js/socket.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/socket.js"),
    ),
    (
        "auction.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/auction.css"),
    ),
    (
        "js/auction.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/auction.js"),
    ),
    (
        "js/chat.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/chat.js"),
    ),
    (
        "js/message_view.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/message_view.js"),
    ),
    (
        "js/p2p.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/p2p.js"),
    ),
    (
        "js/crawl.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/crawl.js"),
    ),
    (
        "js/admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/js/admin.js"),
    ),
];

pub async fn serve(path: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(p, _, _)| *p == path.as_str()) {
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
        None => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such file"),
    }
}
