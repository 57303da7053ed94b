//! The page: one self-contained HTML file (inline CSS and vanilla
//! JavaScript, no external asset, no build step) that shows the funnel per
//! team, the rep leaderboard, who is confidently below benchmark and the
//! engine's health. Served at `/` by `salespulse run` (it reads
//! `/api/v1/kpis`) and written by `salespulse replay --report` with the
//! documents embedded (no server needed).
//!
//! Owns: the HTML asset (`src/page.html`, compiled in with `include_str!`)
//! and embedding documents into it safely.
//! Must not touch: numbers. The page computes no KPI: it shows the values of
//! [`crate::kpi_json`] documents (and, live, the events/s between two
//! refreshes of the engine's counters).

use serde_json::Value;

const HTML: &str = include_str!("page.html");

/// Where [`report`] puts the embedded data.
const DATA_MARK: &str = "<!--salespulse:data-->";

/// The live page (it fetches its data).
pub fn live() -> &'static str {
    HTML
}

/// The static page with `data` embedded: `{"documents": {window: document},
/// "replay": summary, ...}` (see `docs/api.md`, "The static report").
pub fn report(data: &Value) -> String {
    // JSON inside <script>: no "</script>" or "<!--" may appear in it; every
    // '<' is in a string (JSON has no other place for it), where \u003c
    // means the same.
    let json = data.to_string().replace('<', "\\u003c");
    let tag = format!("<script type=\"application/json\" id=\"salespulse-data\">{json}</script>");
    HTML.replacen(DATA_MARK, &tag, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asset_is_self_contained() {
        assert_eq!(HTML.matches(DATA_MARK).count(), 1);
        for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "<link", "url(http"] {
            assert!(!HTML.contains(external), "the page must not load anything: {external}");
        }
        assert!(HTML.contains("/api/v1/kpis"));
        assert!(HTML.contains("<html lang=\"en\">"));
    }

    #[test]
    fn embedded_data_cannot_close_the_script() {
        let data = serde_json::json!({ "documents": {}, "replay": { "first_invalid": [{ "text": "</script><script>alert(1)</script><!--" }] } });
        let page = report(&data);
        assert!(!page.contains(DATA_MARK));
        let start = page.find("id=\"salespulse-data\">").unwrap() + "id=\"salespulse-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let back: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(back, data);
    }
}
