//! The configurable [`GenericHmac`] scheme: `prefix` + encoded HMAC of a
//! signed-content template, in a configured header.

use crate::crypto::{Clock, any_match, from_base64, from_hex, hmac, parse_timestamp, to_base64};
use crate::error::{SignError, VerifyError};
use crate::request::{Request, Verified};
use crate::scheme::{GenericHmac, SignatureEncoding};
use crate::secret::WebhookSecret;

/// One piece of a parsed template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    Body,
    Timestamp,
    Id,
    Method,
    Url,
}

/// Parses `config.template` and checks that each placeholder it uses has what
/// it needs. `{` and `}` are reserved for placeholders.
pub(crate) fn parse_template(config: &GenericHmac) -> Result<Vec<Part>, String> {
    if config.header.trim().is_empty() {
        return Err("`header` is empty".to_owned());
    }
    let mut parts = Vec::new();
    let mut rest = config.template.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("unmatched `}` in template".to_owned());
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| "unclosed `{` in template".to_owned())?;
        let part = match &rest[open + 1..open + close] {
            "body" => Part::Body,
            "timestamp" if config.timestamp_header.is_some() => Part::Timestamp,
            "timestamp" => {
                return Err(
                    "template uses `{timestamp}` but `timestamp_header` is not set".to_owned(),
                );
            }
            "id" if config.id_header.is_some() => Part::Id,
            "id" => return Err("template uses `{id}` but `id_header` is not set".to_owned()),
            "method" => Part::Method,
            "url" => Part::Url,
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` in template; expected body, timestamp, id, method or url"
                ));
            }
        };
        parts.push(part);
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

/// The header values the template refers to.
struct Values<'a> {
    timestamp: Option<&'a str>,
    id: Option<&'a str>,
}

fn content<'a>(parts: &'a [Part], req: &Request<'a>, values: &Values<'a>) -> Vec<&'a [u8]> {
    parts
        .iter()
        .map(|part| match part {
            Part::Literal(text) => text.as_bytes(),
            Part::Body => req.body,
            Part::Timestamp => values.timestamp.unwrap_or_default().as_bytes(),
            Part::Id => values.id.unwrap_or_default().as_bytes(),
            Part::Method => req.method.as_bytes(),
            Part::Url => req.url.as_bytes(),
        })
        .collect()
}

pub(crate) fn verify(
    config: &GenericHmac,
    secrets: &[WebhookSecret],
    req: &Request<'_>,
    clock: Clock,
) -> Result<Verified, VerifyError> {
    let parts = parse_template(config).map_err(VerifyError::InvalidConfig)?;
    let malformed = |reason| VerifyError::MalformedHeader {
        header: config.header.clone(),
        reason,
    };
    let value = req.require(&config.header)?.trim();
    let encoded = match &config.prefix {
        Some(prefix) => value
            .strip_prefix(prefix.as_str())
            .ok_or_else(|| malformed("missing the configured prefix"))?,
        None => value,
    };
    let received = match config.encoding {
        SignatureEncoding::Hex => {
            from_hex(encoded).ok_or_else(|| malformed("signature is not hex"))?
        }
        SignatureEncoding::Base64 => {
            from_base64(encoded).ok_or_else(|| malformed("signature is not base64"))?
        }
    };
    let (timestamp, ts_value) = match &config.timestamp_header {
        Some(name) => {
            let ts = req.require(name)?;
            (Some(parse_timestamp(name, ts.trim())?), Some(ts))
        }
        None => (None, None),
    };
    let id = match &config.id_header {
        Some(name) if parts.contains(&Part::Id) => Some(req.require(name)?),
        Some(name) => req.header(name),
        None => None,
    };
    if let Some(timestamp) = timestamp {
        clock.check(timestamp)?;
    }
    let values = Values {
        timestamp: ts_value,
        id,
    };
    let signed = content(&parts, req, &values);
    any_match(secrets, &[received], |secret| {
        Ok(hmac(config.algorithm, secret.as_bytes(), &signed))
    })?;
    Ok(Verified {
        event_id: id.map(str::to_owned),
        timestamp,
    })
}

pub(crate) fn sign(
    config: &GenericHmac,
    secret: &WebhookSecret,
    req: &Request<'_>,
    now: i64,
    id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let parts = parse_template(config).map_err(SignError::InvalidConfig)?;
    let ts = now.to_string();
    let values = Values {
        timestamp: Some(&ts),
        id: Some(id),
    };
    let mac = hmac(
        config.algorithm,
        secret.as_bytes(),
        &content(&parts, req, &values),
    );
    let encoded = match config.encoding {
        SignatureEncoding::Hex => hex::encode(mac),
        SignatureEncoding::Base64 => to_base64(&mac),
    };
    let mut headers = vec![(
        config.header.clone(),
        format!("{}{encoded}", config.prefix.as_deref().unwrap_or_default()),
    )];
    if let Some(name) = &config.timestamp_header {
        headers.push((name.clone(), ts.clone()));
    }
    if let Some(name) = &config.id_header {
        headers.push((name.clone(), id.to_owned()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::{Part, parse_template};
    use crate::scheme::GenericHmac;

    #[test]
    fn template_parses_placeholders_and_literals() {
        let mut config = GenericHmac::new("X-Sig");
        config.template = "{timestamp}.{body}".to_owned();
        config.timestamp_header = Some("X-Ts".to_owned());
        assert_eq!(
            parse_template(&config).unwrap(),
            [Part::Timestamp, Part::Literal(".".to_owned()), Part::Body]
        );
    }

    #[test]
    fn template_errors_are_descriptive() {
        let mut config = GenericHmac::new("X-Sig");
        for (template, needle) in [
            ("{timestamp}.{body}", "timestamp_header"),
            ("{id}", "id_header"),
            ("{bogus}", "unknown placeholder `{bogus}`"),
            ("{body", "unclosed"),
            ("body}", "unmatched"),
        ] {
            config.template = template.to_owned();
            let error = parse_template(&config).unwrap_err();
            assert!(error.contains(needle), "{template}: {error}");
        }
    }
}
