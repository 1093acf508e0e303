//! The small HTML pages a browser is shown on the OAuth paths: the product
//! API's connect flow (link errors, the key form, the done page) and the
//! sandbox provider's consent page. Both sides answer with the same page,
//! so it is written once here, in the lowest crate both depend on; pure,
//! like the rest of this crate (the caller turns it into its response).

/// `s` safe as HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A whole page: `title` (escaped) as its title and heading, `body` (HTML,
/// as given: the caller escapes what it puts in) as its content.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>\n",
        t = escape(title)
    )
}

/// The headers every such page goes out with: HTML in UTF-8, never cached
/// (it may carry a single-use link or form), never framed (clickjacking).
pub const PAGE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character that could end text or an attribute is escaped, `&` first
    /// (so an escape is not escaped again); the title is escaped, the body is not.
    #[test]
    fn escapes_text_and_builds_the_page() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
        assert_eq!(escape("&lt;"), "&amp;lt;");
        let p = page("A <b>", "<p id=\"error\">x</p>");
        assert!(p.starts_with("<!doctype html>\n"), "{p}");
        assert!(p.contains("<title>A &lt;b&gt;</title>"), "{p}");
        assert!(
            p.contains("<h1>A &lt;b&gt;</h1><p id=\"error\">x</p></main>"),
            "{p}"
        );
    }
}
