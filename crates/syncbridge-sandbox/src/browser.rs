//! A headless stand-in for the customer's browser in a connect flow: it
//! follows redirects one by one and carries the cookies it is given, as a
//! browser does (the connect flow binds its callback to the browser that
//! opened the link with a cookie). The demo and the end-to-end tests drive
//! the sandbox's consent flow with it; with `--oauth-auto-approve` no page
//! needs a click.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// Why a walk stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The request failed.
    #[error("request to {url} failed: {source}")]
    Request {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// A redirect without a usable `Location`.
    #[error("{0}: a redirect without a usable Location")]
    BadRedirect(String),
    /// More hops than any flow takes.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

/// Where a walk ended: the last URL and its response.
#[derive(Debug)]
pub struct Landing {
    /// Every URL requested, in order (the first is where the walk started).
    pub chain: Vec<url::Url>,
    /// The last response's status.
    pub status: u16,
    /// Its `Location`, when the walk stopped at a redirect.
    pub location: Option<url::Url>,
    /// Its body.
    pub body: String,
}

/// A cookie jar and a client that does not follow redirects by itself.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

/// The most hops a walk takes.
const MAX_HOPS: usize = 10;

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client without TLS settings builds"),
            jar: BTreeMap::new(),
        }
    }

    /// Follows `url`'s redirects, cookies included, until an answer that is
    /// not a redirect, or a redirect to a URL that `stop` accepts (a return
    /// URL nothing listens on).
    ///
    /// # Errors
    /// [`BrowseError`].
    pub async fn walk(
        &mut self,
        url: &str,
        stop: impl Fn(&url::Url) -> bool,
    ) -> Result<Landing, BrowseError> {
        let mut at = url::Url::parse(url).map_err(|_| BrowseError::BadRedirect(url.into()))?;
        let mut chain = vec![at.clone()];
        for _ in 0..MAX_HOPS {
            let resp = self.get(&at).await?;
            let status = resp.status().as_u16();
            let location = match resp.headers().get(LOCATION) {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .ok()
                        .and_then(|l| at.join(l).ok())
                        .ok_or_else(|| BrowseError::BadRedirect(at.to_string()))?,
                ),
            };
            let next = location.clone().filter(|l| !stop(l));
            let Some(next) = next.filter(|_| resp.status().is_redirection()) else {
                let body = resp.text().await.unwrap_or_default();
                return Ok(Landing {
                    chain,
                    status,
                    location,
                    body,
                });
            };
            at = next;
            chain.push(at.clone());
        }
        Err(BrowseError::TooManyRedirects(MAX_HOPS))
    }

    /// One request with the jar's cookies; keeps the cookies it sets.
    async fn get(&mut self, at: &url::Url) -> Result<reqwest::Response, BrowseError> {
        let mut req = self.http.get(at.clone());
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(COOKIE, cookies.join("; "));
        }
        let resp = req.send().await.map_err(|source| BrowseError::Request {
            url: at.to_string(),
            source,
        })?;
        for v in resp.headers().get_all(SET_COOKIE) {
            self.keep(v.to_str().unwrap_or(""));
        }
        Ok(resp)
    }

    /// Stores (or, with an empty value or `Max-Age=0`, drops) one cookie.
    fn keep(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
            return;
        };
        let expired = parts.any(|p| p.trim().eq_ignore_ascii_case("max-age=0"));
        if expired || value.is_empty() {
            self.jar.remove(name.trim());
        } else {
            self.jar
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }

    /// Whether the jar holds a cookie named `name`.
    pub fn has_cookie(&self, name: &str) -> bool {
        self.jar.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_kept_replaced_and_dropped() {
        let mut b = Browser::new();
        b.keep("sb_connect_cs_1=abc; Path=/api/v1/connect; Max-Age=600; HttpOnly; SameSite=Lax");
        assert!(b.has_cookie("sb_connect_cs_1"));
        b.keep("sb_connect_cs_1=def; Path=/api/v1/connect");
        assert_eq!(b.jar["sb_connect_cs_1"], "def");
        b.keep("sb_connect_cs_1=; Path=/api/v1/connect; Max-Age=0");
        assert!(!b.has_cookie("sb_connect_cs_1"));
        b.keep("garbage");
        assert!(b.jar.is_empty());
    }
}
