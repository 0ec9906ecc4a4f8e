//! The worker protocol both ways: a worker's frame as the server reads and
//! validates it (`crawl::worker_session`), and a server frame as a worker
//! reads it. What parses survives a trip back through JSON; lease tokens are
//! canonical; offers and links the server accepts are on the site's hosts.

#![no_main]

use std::sync::OnceLock;

use bazaar::crawl::lease::LeaseToken;
use bazaar::crawl::sites::{is_allowed, Sites};
use bazaar::crawl::worker_session::{parse_frame, validate_items, validate_links};
use bazaar::protocol::worker::{ServerFrame, WorkerFrame};
use bazaar::protocol::ErrorCode;
use libfuzzer_sys::fuzz_target;
use url::Url;

/// The demo stores, as a server on this address configures them.
fn sites() -> &'static Sites {
    static SITES: OnceLock<Sites> = OnceLock::new();
    SITES.get_or_init(|| Sites::load(None, "http://127.0.0.1:8080").expect("the demo sites parse"))
}

fn check_lease(lease: &str) {
    if let Some(token) = LeaseToken::parse(lease) {
        assert!(token.task() > 0, "{lease:?}");
        assert_eq!(LeaseToken::parse(token.as_str()), Some(token));
    }
}

fn check_result(frame: WorkerFrame) {
    let sites = sites();
    match frame {
        WorkerFrame::Result {
            lease,
            items,
            links,
            ..
        } => {
            check_lease(&lease);
            let site = sites.get("retroshelf").expect("a demo site");
            let hosts = &site.profile.allowed_hosts;
            if let Ok(items) = validate_items(items, sites, "retroshelf") {
                assert!(!items.is_empty());
                for item in items {
                    assert_eq!(item.store, site.profile.store);
                    assert!(!item.title.is_empty() && item.title.trim() == item.title);
                    assert!(item.price_cents >= 0);
                    assert!(item.currency.len() == 3);
                    let url = Url::parse(&item.url).expect("a validated URL");
                    assert!(is_allowed(&url, hosts), "{url}");
                }
            }
            if let Ok(tasks) = validate_links(links, sites, "retroshelf") {
                for task in tasks {
                    assert!(task.url.fragment().is_none(), "{}", task.url);
                    assert!(is_allowed(&task.url, hosts), "{}", task.url);
                }
            }
        }
        WorkerFrame::Heartbeat { leases, .. } => leases.iter().for_each(|l| check_lease(l)),
        WorkerFrame::Failed { lease, .. } => check_lease(&lease),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match parse_frame(text) {
            Ok(frame) => {
                let again = serde_json::to_string(&frame).expect("a frame encodes");
                let back: WorkerFrame = serde_json::from_str(&again).expect("and decodes");
                assert_eq!(back, frame);
                check_result(frame);
            }
            Err(refusal) => assert!(
                matches!(refusal.code, ErrorCode::BadFrame | ErrorCode::UnknownOp),
                "{refusal:?}"
            ),
        }
    }
    // What a worker does with a server frame (`worker::link`).
    if let Ok(frame) = serde_json::from_slice::<ServerFrame>(data) {
        let again = serde_json::to_string(&frame).expect("a frame encodes");
        let back: ServerFrame = serde_json::from_str(&again).expect("and decodes");
        assert_eq!(back, frame);
    }
});
