//! HTTP trigger route templates (`"route": "webhooks/{connectionId}"`, §3), matched
//! like ASP.NET routing does for the host: literal segments ignore ASCII case,
//! `{name}` takes one non-empty segment, `{name:constraint}` too (`int`, `long`,
//! `guid`, `alpha`, `bool` are checked; other constraints are accepted as-is),
//! `{name?}` may be missing at the end, `{*name}` / `{**name}` swallows the rest.
//! Captured values are percent-decoded. A function without `route` answers at its
//! own name.

use std::collections::BTreeMap;

/// A parsed route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param {
        name: String,
        constraint: Option<String>,
        optional: bool,
    },
    CatchAll(String),
}

impl RouteTemplate {
    /// Parses a template such as `webhooks/{connectionId}`; leading/trailing `/` ignored.
    pub fn parse(template: &str) -> Result<Self, String> {
        let trimmed = template.trim_matches('/');
        let mut segments = Vec::new();
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let seg = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                if let Some(name) = inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
                    if !last {
                        return Err(format!(
                            "catch-all {{{inner}}} must be the last segment of {template:?}"
                        ));
                    }
                    Segment::CatchAll(name.split(':').next().unwrap_or(name).to_string())
                } else {
                    let (inner, optional) = match inner.strip_suffix('?') {
                        Some(i) => (i, true),
                        None => (inner, false),
                    };
                    if optional && !last {
                        return Err(format!(
                            "optional {{{inner}?}} must be the last segment of {template:?}"
                        ));
                    }
                    let (name, constraint) = match inner.split_once(':') {
                        Some((n, c)) => (n, Some(c.to_ascii_lowercase())),
                        None => (inner, None),
                    };
                    if name.is_empty() {
                        return Err(format!("empty parameter name in {template:?}"));
                    }
                    Segment::Param {
                        name: name.to_string(),
                        constraint,
                        optional,
                    }
                }
            } else if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "segment {part:?} of {template:?} mixes text and parameters (unsupported)"
                ));
            } else if part.is_empty() {
                return Err(format!("empty segment in {template:?}"));
            } else {
                Segment::Literal(part.to_string())
            };
            segments.push(seg);
        }
        Ok(RouteTemplate {
            text: trimmed.to_string(),
            segments,
        })
    }

    /// The template text without surrounding slashes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path relative to the route prefix (no leading `/`); returns
    /// the route values (`Params`) on success.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let path = path.trim_matches('/');
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let mut params = BTreeMap::new();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Literal(lit) => {
                    let part = parts.get(i)?;
                    if !percent_decode(part).eq_ignore_ascii_case(lit) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Param {
                    name,
                    constraint,
                    optional,
                } => match parts.get(i) {
                    Some(part) if !part.is_empty() => {
                        let value = percent_decode(part);
                        if !constraint_ok(constraint.as_deref(), &value) {
                            return None;
                        }
                        params.insert(name.clone(), value);
                        i += 1;
                    }
                    _ if *optional => {}
                    _ => return None,
                },
                Segment::CatchAll(name) => {
                    let rest = parts[i.min(parts.len())..].join("/");
                    params.insert(name.clone(), percent_decode(&rest));
                    i = parts.len();
                }
            }
        }
        (i == parts.len()).then_some(params)
    }
}

fn constraint_ok(constraint: Option<&str>, value: &str) -> bool {
    match constraint {
        Some("int") => value.parse::<i32>().is_ok(),
        Some("long") => value.parse::<i64>().is_ok(),
        Some("bool") => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        Some("alpha") => value.chars().all(|c| c.is_ascii_alphabetic()),
        Some("guid") => {
            let hex: String = value.chars().filter(|c| *c != '-').collect();
            hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        _ => true,
    }
}

/// Decodes `%XX` escapes (invalid escapes and non-UTF-8 results are kept lossily).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        RouteTemplate::parse(template)
            .unwrap()
            .matches(path)
            .map(|p| p.into_iter().collect())
    }

    /// Route templates match literals case-insensitively, capture and decode parameters, honour constraints.
    #[test]
    fn template_matching_table() {
        let one = |k: &str, v: &str| Some(vec![(k.to_string(), v.to_string())]);
        assert_eq!(
            m("webhooks/{connectionId}", "webhooks/c-1"),
            one("connectionId", "c-1")
        );
        assert_eq!(
            m("webhooks/{connectionId}", "Webhooks/a%20b/"),
            one("connectionId", "a b")
        );
        assert_eq!(m("webhooks/{connectionId}", "webhooks"), None);
        assert_eq!(m("webhooks/{connectionId}", "webhooks/a/b"), None);
        assert_eq!(m("items/{id:int}", "items/42"), one("id", "42"));
        assert_eq!(m("items/{id:int}", "items/x"), None);
        assert_eq!(m("items/{id?}", "items"), Some(vec![]));
        assert_eq!(m("files/{*path}", "files/a/b/c"), one("path", "a/b/c"));
        assert_eq!(m("WebhookReceiver", "webhookreceiver"), Some(vec![]));
        assert!(RouteTemplate::parse("a/{*rest}/b").is_err());
        assert!(RouteTemplate::parse("a/x{y}").is_err());
    }

    /// Percent-decoding handles escapes, stray percent signs and truncated escapes.
    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
