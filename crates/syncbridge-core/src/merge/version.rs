//! Versions of a record on both sides, and the remote ordering guard.

use std::cmp::Ordering;

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// A provider's version of a record: a number (ordered) or an opaque text such
/// as an ETag (only equality is meaningful).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RemoteVersion {
    /// A counter that grows with every change at the provider.
    Number(i64),
    /// An opaque token; two different tokens are not ordered.
    Text(String),
}

impl RemoteVersion {
    /// How `self` orders against `other`: numbers numerically; equal texts
    /// are equal; different texts, or a number against a text, are not
    /// ordered (`None`).
    pub fn compare(&self, other: &RemoteVersion) -> Option<Ordering> {
        match (self, other) {
            (RemoteVersion::Number(a), RemoteVersion::Number(b)) => Some(a.cmp(b)),
            (RemoteVersion::Text(a), RemoteVersion::Text(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }
}

impl From<i64> for RemoteVersion {
    fn from(v: i64) -> Self {
        RemoteVersion::Number(v)
    }
}

impl From<&str> for RemoteVersion {
    fn from(v: &str) -> Self {
        RemoteVersion::Text(v.to_owned())
    }
}

/// The versions of a record as one sync step sees them: the remote snapshot's
/// provider version and modification time, and our store's version and the
/// time the product last changed it.
///
/// As the `versions` of [`super::three_way_merge`], the `remote_*` fields
/// describe the incoming remote snapshot and the `local_*` fields our current
/// record. As the arguments of [`should_apply_remote`], only the `remote_*`
/// fields are read: `current` is the last remote snapshot we accepted,
/// `incoming` the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The provider's version of the record, if it reports one.
    pub remote_version: Option<RemoteVersion>,
    /// The provider's last-modified time of the record, if it reports one.
    pub remote_updated_at: Option<Timestamp>,
    /// Our store's version of the record.
    pub local_version: i64,
    /// When the product last changed the record in our store (not when a
    /// sync wrote it), if known.
    pub local_updated_at: Option<Timestamp>,
}

/// How the `incoming` remote snapshot orders against the `current` one:
/// by provider version when both carry comparable versions, else by
/// provider modification time when both carry one, else `None` (unknown).
pub fn remote_order(current: &Version, incoming: &Version) -> Option<Ordering> {
    if let (Some(cur), Some(inc)) = (&current.remote_version, &incoming.remote_version)
        && let Some(order) = inc.compare(cur)
    {
        return Some(order);
    }
    match (current.remote_updated_at, incoming.remote_updated_at) {
        (Some(cur), Some(inc)) => Some(inc.cmp(&cur)),
        _ => None,
    }
}

/// The ordering guard: `false` only when the incoming remote snapshot is
/// provably *older* than the one already accepted, so an older remote version
/// never overwrites a newer one.
///
/// An equal version is applied (a redelivery of the same snapshot, or the
/// first delivery after a crash that stored the version but not more; the
/// merge is idempotent, so re-applying it changes nothing). When the order is
/// unknown (no comparable versions or times) the snapshot is applied: the
/// three-way merge and echo suppression still protect against it, and
/// providers without any version or time cannot be ordered at all.
pub fn should_apply_remote(current: &Version, incoming: &Version) -> bool {
    remote_order(current, incoming) != Some(Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: Option<RemoteVersion>, at: Option<i64>) -> Version {
        Version {
            remote_version: version,
            remote_updated_at: at.map(Timestamp::from_millis),
            ..Version::default()
        }
    }

    /// Versions decide first, then times; older is refused, equal and newer applied, unknown applied.
    #[test]
    fn ordering_guard_table() {
        let n = |x: i64| Some(RemoteVersion::Number(x));
        let t = |x: &str| Some(RemoteVersion::Text(x.into()));
        let cases = [
            // (current, incoming, apply?)
            (v(n(5), None), v(n(4), None), false),
            (v(n(5), None), v(n(5), None), true),
            (v(n(5), None), v(n(6), None), true),
            // version beats time, even when times disagree
            (v(n(5), Some(100)), v(n(6), Some(50)), true),
            (v(n(5), Some(50)), v(n(4), Some(100)), false),
            // no comparable version: fall back to time
            (v(None, Some(100)), v(None, Some(99)), false),
            (v(None, Some(100)), v(None, Some(100)), true),
            (v(t("a"), Some(100)), v(t("b"), Some(99)), false),
            (v(t("a"), Some(100)), v(t("b"), Some(101)), true),
            (v(n(3), Some(100)), v(t("b"), Some(99)), false),
            (v(t("a"), None), v(t("a"), None), true),
            // nothing comparable: applied
            (v(None, None), v(n(1), Some(1)), true),
            (v(t("a"), None), v(t("b"), None), true),
            (v(n(9), None), v(None, Some(1)), true),
        ];
        for (i, (cur, inc, want)) in cases.iter().enumerate() {
            assert_eq!(should_apply_remote(cur, inc), *want, "case {i}");
        }
    }

    /// A remote version deserializes from a JSON number or string.
    #[test]
    fn remote_version_serde() {
        let n: RemoteVersion = serde_json::from_str("42").unwrap();
        let s: RemoteVersion = serde_json::from_str("\"W/\\\"abc\\\"\"").unwrap();
        assert_eq!(n, RemoteVersion::Number(42));
        assert_eq!(s, RemoteVersion::Text("W/\"abc\"".into()));
        assert_eq!(n.compare(&RemoteVersion::from(41)), Some(Ordering::Greater));
        assert_eq!(s.compare(&RemoteVersion::from("x")), None);
    }
}
