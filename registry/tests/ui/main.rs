//! The web UI and its JSON API against the real `berth`: what each caller
//! sees (access control), the views' content, the forms' CSRF checks
//! (`api.rs`); and the pages in a real headless chromium driven over
//! WebDriver, with screenshots in `target/ui-screenshots/` (`browser.rs`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod browser;
mod support;
