//! The crawler configuration that points the sites at the demo stores.

/// Default crawler configuration for the demo stores. Contains the literal
/// placeholders `{public_url}` and `{public_host}`; see [`sites_toml`].
pub const SITES_TOML_TEMPLATE: &str = include_str!("sites.toml");

/// [`SITES_TOML_TEMPLATE`] with the placeholders filled in.
/// `public_url` is e.g. `http://127.0.0.1:8080` (a trailing `/` is tolerated);
/// `public_host` is the host as `allowed_hosts` spells it: `host[:port]`, e.g.
/// `127.0.0.1:8080` (the port is omitted only when it is the scheme's default).
pub fn sites_toml(public_url: &str, public_host: &str) -> String {
    SITES_TOML_TEMPLATE
        .replace("{public_url}", public_url.trim_end_matches('/'))
        .replace("{public_host}", public_host)
}
