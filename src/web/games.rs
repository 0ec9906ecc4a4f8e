//! The catalog pages: `/` (search, sort, pages, crawl progress) and
//! `/games/{id}` (offers per store, historical low, price chart).

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use entity::crawls::CrawlStatus;
use entity::games;
use sea_orm::DatabaseConnection;

use super::api::GamesQuery;
use super::chart::{price_chart, Chart};
use super::error::PageError;
use super::session::{form_token, with_csrf_cookie, MaybeViewer};
use super::subscriptions::GameChoice;
use super::{html, Nav};
use crate::clock::{self, delta};
use crate::config::Settings;
use crate::crawl::browse;
use crate::crawl::catalog::discount_pct;
use crate::crawl::lease::TaskState;
use crate::crawl::scheduler::Scheduler;
use crate::crawl::scheduler::StartCrawl;
use crate::crawl::store::{self, CrawlReport};
use crate::domain::money::Money;
use crate::web::session::Accounts;

/// A row of the games list, formatted for display.
pub struct GameRow {
    pub id: i64,
    pub title: String,
    pub price: String,
    pub regular: String,
    pub discount: i32,
    pub low: String,
    pub stores: i32,
}

impl GameRow {
    fn from(game: &games::Model) -> GameRow {
        let currency = game.currency.as_deref().unwrap_or("EUR");
        let fmt = |c: Option<i64>| {
            c.map(|c| Money::new(c, currency).to_string())
                .unwrap_or_default()
        };
        GameRow {
            id: game.id,
            title: game.title.clone(),
            price: game
                .best_cents
                .map(|c| Money::new(c, currency).to_string())
                .unwrap_or_else(|| "out of stock".to_owned()),
            regular: if game.discount_pct > 0 {
                fmt(game.regular_cents)
            } else {
                String::new()
            },
            discount: game.discount_pct,
            low: fmt(game.low_cents),
            stores: game.store_count,
        }
    }
}

/// The latest crawl, formatted for the status line.
pub struct CrawlLine {
    pub id: i64,
    pub running: bool,
    pub started: String,
    pub finished: String,
    pub done: u64,
    pub total: u64,
    pub percent: u64,
    pub dead: u64,
}

impl CrawlLine {
    fn from(report: &CrawlReport) -> CrawlLine {
        let total = report.total();
        let done = report.finished_tasks();
        CrawlLine {
            id: report.crawl.id,
            running: report.crawl.status == CrawlStatus::Running,
            started: when(report.crawl.started_at),
            finished: report.crawl.finished_at.map(when).unwrap_or_default(),
            done,
            total,
            percent: (done * 100).checked_div(total).unwrap_or(0),
            dead: report
                .tasks
                .get(TaskState::Dead.as_str())
                .copied()
                .unwrap_or(0),
        }
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[derive(Template)]
#[template(path = "games.html")]
struct IndexPage {
    nav: Nav,
    games: Vec<GameRow>,
    q: String,
    sort: &'static str,
    page: u64,
    pages: u64,
    total: u64,
    crawl: Option<CrawlLine>,
    // The digest form (`subscribe_form.html`).
    csrf: String,
    game: Option<GameChoice>,
    email: &'static str,
    target: &'static str,
}

impl IndexPage {
    /// A link to another page of the same search.
    fn page_link(&self, page: u64) -> String {
        let q: String = url::form_urlencoded::byte_serialize(self.q.as_bytes()).collect();
        format!("/?q={q}&sort={}&page={page}", self.sort)
    }
}

pub async fn index(
    req: HttpRequest,
    query: web::Query<GamesQuery>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    settings: web::Data<Settings>,
    accounts: web::Data<Accounts>,
    scheduler: web::Data<Addr<Scheduler>>,
) -> Result<HttpResponse, PageError> {
    let sort = query.sort().map_err(PageError::BadRequest)?;
    maybe_refresh(&db, &settings, &scheduler).await?;
    let page = browse::list_games(db.get_ref(), &query.q, sort, query.page.unwrap_or(1)).await?;
    let crawl = match store::latest_crawl(db.get_ref()).await? {
        Some(latest) => store::crawl_report(db.get_ref(), latest.id)
            .await?
            .as_ref()
            .map(CrawlLine::from),
        None => None,
    };
    let (csrf, fresh) = form_token(&req, &viewer);
    let body = IndexPage {
        nav: Nav::from(&viewer),
        games: page.games.iter().map(GameRow::from).collect(),
        q: query.q.clone(),
        sort: sort.as_str(),
        page: page.page,
        pages: page.pages,
        total: page.total,
        crawl,
        csrf,
        game: None,
        email: "",
        target: "",
    }
    .render()?;
    Ok(with_csrf_cookie(html(body), &accounts, fresh))
}

/// A visitor looking at stale prices starts a fresh crawl.
async fn maybe_refresh(
    db: &DatabaseConnection,
    settings: &Settings,
    scheduler: &Addr<Scheduler>,
) -> Result<(), PageError> {
    if store::running_crawl(db).await?.is_some() {
        return Ok(());
    }
    let stale_after = delta(settings.crawl.stale_after);
    let stale = match store::last_finished_crawl(db).await? {
        Some(last) => last
            .finished_at
            .is_none_or(|t| t + stale_after <= clock::now()),
        None => true,
    };
    if stale {
        scheduler.do_send(StartCrawl { trigger: "visitor" });
    }
    Ok(())
}

/// An offer, formatted for display.
pub struct OfferRow {
    pub store: String,
    pub url: String,
    pub price: String,
    pub regular: String,
    pub discount: i32,
    pub available: bool,
}

#[derive(Template)]
#[template(path = "game.html")]
struct GamePage {
    nav: Nav,
    title: String,
    best: String,
    low: String,
    offers: Vec<OfferRow>,
    chart: Option<Chart>,
    // The alert form (`subscribe_form.html`).
    csrf: String,
    game: Option<GameChoice>,
    email: &'static str,
    target: &'static str,
}

pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let id: i64 = path.parse().map_err(|_| PageError::NotFound)?;
    let detail = browse::game_detail(db.get_ref(), id)
        .await?
        .ok_or(PageError::NotFound)?;
    let currency = detail
        .game
        .currency
        .clone()
        .unwrap_or_else(|| "EUR".to_owned());
    let offers = detail
        .offers
        .iter()
        .map(|o| OfferRow {
            store: o.store.clone(),
            url: o.url.clone(),
            price: Money::new(o.price_cents, &o.currency).to_string(),
            regular: o
                .regular_cents
                .filter(|&r| r > o.price_cents)
                .map(|r| Money::new(r, &o.currency).to_string())
                .unwrap_or_default(),
            discount: discount_pct(o),
            available: o.available,
        })
        .collect();
    let best = detail
        .game
        .best_cents
        .map(|c| Money::new(c, &currency).to_string())
        .unwrap_or_else(|| "out of stock".to_owned());
    let (csrf, fresh) = form_token(&req, &viewer);
    let body = GamePage {
        nav: Nav::from(&viewer),
        title: detail.game.title.clone(),
        game: Some(GameChoice {
            id: detail.game.id,
            title: detail.game.title.clone(),
            price: best.clone(),
        }),
        best,
        csrf,
        email: "",
        target: "",
        low: detail
            .game
            .low_cents
            .map(|c| Money::new(c, &currency).to_string())
            .unwrap_or_default(),
        offers,
        chart: price_chart(&detail.history),
    }
    .render()?;
    Ok(with_csrf_cookie(html(body), &accounts, fresh))
}
