//! The product API's changes (issue 17): idempotency keys, and keyset pages
//! of parked conflicts and of the push-decision audit.
//!
//! # Idempotency keys (Stripe's semantics)
//!
//! A change call (`POST|PATCH|DELETE …/records`, `…/resolve`) may carry an
//! `Idempotency-Key`. The API claims the key before it acts
//! ([`super::Store::claim_idempotency_key`]), stores its 2xx answer when done
//! ([`super::Store::complete_idempotency_key`]) or gives the key back on a
//! refusal ([`super::Store::release_idempotency_key`]). Rules every backend
//! keeps:
//!
//! - A key lives in a **scope** (the API key's id): two clients never see
//!   each other's keys.
//! - The **fingerprint** (the API's SHA-256 of method, path and canonical
//!   body) is fixed at the first claim: another fingerprint under a live key
//!   is [`ClaimOutcome::Reused`], whatever the key's state.
//! - A claim holds for [`CLAIM_TTL`]: a second claim with the same
//!   fingerprint meanwhile is [`ClaimOutcome::InFlight`]; after it, the claim
//!   is free again (a crashed request does not lock the key forever) and a
//!   new claim takes it with a new token.
//! - A completed key answers [`ClaimOutcome::Replay`] with the stored answer
//!   until [`RETENTION`] after its first claim; after that the key is
//!   forgotten (claimed anew as if never seen).
//! - Complete and release act only under the claim's own token: a request
//!   whose claim expired and was taken over changes nothing (`Ok(false)`).
//! - Claims are atomic across processes (SQLite: one `IMMEDIATE`
//!   transaction; Cosmos DB: create + 409, replace under the ETag).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::model::AuditRecord;

/// How long a claim holds the key before another request may take it over.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// How long a key is remembered after its first claim.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// One claim of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// Whose keys (the API key's id).
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// What the request was (SHA-256 hex of method, path and canonical body).
    pub fingerprint: String,
    /// This claim's own token (random); complete and release need it.
    pub token: String,
    /// The store's idea of now (the caller's clock).
    pub now: Timestamp,
}

/// An answer stored under a completed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// HTTP status (2xx).
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is ours until `now + CLAIM_TTL`: act, then complete or release.
    Claimed,
    /// The same request holds the key and has not answered yet.
    InFlight,
    /// The key was used for another request (another fingerprint).
    Reused,
    /// The same request was answered: answer it again.
    Replay(StoredAnswer),
}

/// An idempotency key as stored (both backends keep this document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// Whose keys.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// The request's fingerprint.
    pub fingerprint: String,
    /// The current claim's token.
    pub token: String,
    /// When the current claim lapses (in flight only).
    pub claim_until: Timestamp,
    /// When the key is forgotten.
    pub expires_at: Timestamp,
    /// The answer, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
}

impl IdempotencyEntry {
    /// A fresh claim's entry.
    pub fn claimed(c: &IdempotencyClaim) -> Self {
        IdempotencyEntry {
            scope: c.scope.clone(),
            key: c.key.clone(),
            fingerprint: c.fingerprint.clone(),
            token: c.token.clone(),
            claim_until: c.now.add(CLAIM_TTL),
            expires_at: c.now.add(RETENTION),
            answer: None,
        }
    }

    /// The rule both backends apply to a stored entry and a claim: what the
    /// claim finds, and the entry to write when it takes the key (`None`:
    /// write nothing).
    pub fn decide(stored: Option<&IdempotencyEntry>, c: &IdempotencyClaim) -> Decision {
        let Some(e) = stored.filter(|e| e.expires_at > c.now) else {
            return Decision::Take(Box::new(IdempotencyEntry::claimed(c)));
        };
        if e.fingerprint != c.fingerprint {
            return Decision::Answer(ClaimOutcome::Reused);
        }
        if let Some(answer) = &e.answer {
            return Decision::Answer(ClaimOutcome::Replay(answer.clone()));
        }
        if e.claim_until > c.now {
            return Decision::Answer(ClaimOutcome::InFlight);
        }
        // A lapsed claim: taken over, the key's first-claim expiry kept.
        Decision::Take(Box::new(IdempotencyEntry {
            token: c.token.clone(),
            claim_until: c.now.add(CLAIM_TTL),
            ..e.clone()
        }))
    }
}

/// What [`IdempotencyEntry::decide`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write this entry (a new claim); the outcome is [`ClaimOutcome::Claimed`].
    Take(Box<IdempotencyEntry>),
    /// Answer this without writing.
    Answer(ClaimOutcome),
}

/// Where a page of conflicts continues: records are ordered by
/// (connection, object, external id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey {
    /// Connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// Record.
    pub external_id: ExternalId,
}

/// A page of records with parked conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictQuery {
    /// Only this connection's.
    pub connection: Option<ConnectionId>,
    /// Continue after this record.
    pub after: Option<RecordKey>,
    /// At most this many.
    pub limit: usize,
}

/// Where a page of a connection's audit continues: entries are ordered
/// oldest first by `at` and then by their order of writing. Both parts are
/// the backend's own (SQLite: `at` in ms and the row's sequence; Cosmos DB:
/// `log_order` and the document id), opaque to callers, who hand back what
/// a page gave them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditKey {
    /// The backend's primary order.
    pub order: i64,
    /// The backend's tiebreak (compared as text).
    pub tie: String,
}

/// A page of one connection's audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// The connection.
    pub connection: ConnectionId,
    /// Continue after this entry.
    pub after: Option<AuditKey>,
    /// At most this many.
    pub limit: usize,
}

/// One audit entry of a page, with the key the next page continues after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its position.
    pub key: AuditKey,
    /// The decision.
    pub record: AuditRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(fp: &str, token: &str, secs: i64) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: "k1".into(),
            key: "abc".into(),
            fingerprint: fp.into(),
            token: token.into(),
            now: Timestamp::from_millis(secs * 1000),
        }
    }

    fn taken(d: Decision) -> IdempotencyEntry {
        match d {
            Decision::Take(e) => *e,
            Decision::Answer(a) => panic!("expected a take, got {a:?}"),
        }
    }

    /// What was tried: a key claimed, claimed again (same and other
    /// fingerprint) in flight, after the claim lapsed, completed, and after
    /// retention. What holds: Stripe's answers, the first claim's expiry kept
    /// across a takeover.
    #[test]
    fn decisions_follow_the_rules() {
        let first = taken(IdempotencyEntry::decide(None, &claim("f", "t1", 0)));
        assert_eq!(first.claim_until, Timestamp::from_millis(60_000));
        let again = IdempotencyEntry::decide(Some(&first), &claim("f", "t2", 10));
        assert_eq!(again, Decision::Answer(ClaimOutcome::InFlight));
        let other = IdempotencyEntry::decide(Some(&first), &claim("g", "t2", 10));
        assert_eq!(other, Decision::Answer(ClaimOutcome::Reused));
        let over = taken(IdempotencyEntry::decide(
            Some(&first),
            &claim("f", "t2", 61),
        ));
        assert_eq!(over.token, "t2");
        assert_eq!(over.expires_at, first.expires_at);
        let done = IdempotencyEntry {
            answer: Some(StoredAnswer {
                status: 202,
                body: serde_json::json!({"id": "x"}),
            }),
            ..first.clone()
        };
        assert!(matches!(
            IdempotencyEntry::decide(Some(&done), &claim("f", "t3", 3600)),
            Decision::Answer(ClaimOutcome::Replay(a)) if a.status == 202
        ));
        let day = 24 * 3600;
        let fresh = taken(IdempotencyEntry::decide(
            Some(&done),
            &claim("g", "t4", day),
        ));
        assert_eq!(fresh.fingerprint, "g");
        assert_eq!(fresh.answer, None);
    }
}
