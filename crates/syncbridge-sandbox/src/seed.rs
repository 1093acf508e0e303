//! Deterministic, realistic-looking CRM data.
//!
//! Every seeded record is generated from its own `StdRng` keyed by
//! `(seed, object, index)`, so record *i* is the same whatever the record
//! count, and a contact can name (and share the domain of) company *j* without
//! generating the companies first. Emails and company domains embed the
//! record number, so they are unique. All domains end in `.example`.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::store::{ObjectKind, Props, Record};

/// 2023-01-01T00:00:00Z: seeded records are created in the year after this.
pub const SEED_EPOCH_MS: i64 = 1_672_531_200_000;
const YEAR_SECS: i64 = 365 * 24 * 3600;
/// Seeded records are last modified at most this long after creation.
const MAX_AGE_SECS: i64 = 180 * 24 * 3600;

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "Donald",
    "Katherine",
    "John",
    "Sophie",
    "Guido",
    "Anita",
    "Bjarne",
    "Leslie",
    "Joan",
    "Niklaus",
    "Mary",
    "Yukihiro",
    "Shafi",
    "Vint",
    "Lynn",
    "Tony",
    "Adele",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Knuth",
    "Johnson",
    "McCarthy",
    "Wilson",
    "van Rossum",
    "Borg",
    "Stroustrup",
    "Lamport",
    "Clarke",
    "Wirth",
    "Keller",
    "Matsumoto",
    "Goldwasser",
    "Cerf",
    "Conway",
    "Hoare",
    "Goldberg",
];
const ADJECTIVES: &[&str] = &[
    "Acme",
    "Blue",
    "Bright",
    "Cedar",
    "Copper",
    "Delta",
    "Evergreen",
    "First",
    "Golden",
    "Harbor",
    "Iron",
    "Juniper",
    "Keystone",
    "Lumen",
    "Maple",
    "North",
    "Orbit",
    "Pioneer",
    "Quartz",
    "Red",
    "Summit",
    "Tidal",
    "Union",
    "Vertex",
    "Willow",
];
const NOUNS: &[&str] = &[
    "Analytics",
    "Bakery",
    "Logistics",
    "Robotics",
    "Systems",
    "Labs",
    "Foods",
    "Health",
    "Energy",
    "Capital",
    "Studios",
    "Networks",
    "Dynamics",
    "Freight",
    "Software",
    "Textiles",
    "Ventures",
    "Pharma",
    "Media",
    "Motors",
];
const SUFFIXES: &[&str] = &["Inc", "LLC", "Ltd", "GmbH", "Co", "Group"];
const INDUSTRIES: &[&str] = &[
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "FOOD_BEVERAGES",
    "MARKETING_AND_ADVERTISING",
    "RENEWABLES_ENVIRONMENT",
    "AUTOMOTIVE",
    "PHARMACEUTICALS",
    "EDUCATION_MANAGEMENT",
];
const DEAL_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];
const DEAL_KINDS: &[&str] = &[
    "Renewal",
    "Expansion",
    "New business",
    "Pilot",
    "Upgrade",
    "Annual plan",
];

/// The properties each object kind is seeded with.
pub fn property_names(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Contacts => &["company", "email", "firstname", "lastname", "phone"],
        ObjectKind::Companies => &["domain", "industry", "name"],
        ObjectKind::Deals => &["amount", "dealname", "dealstage", "pipeline"],
    }
}

/// Property names shared by every record of a kind, allocated once per seeding.
struct Keys {
    names: Vec<Arc<str>>,
}

impl Keys {
    fn new(kind: ObjectKind) -> Self {
        Self {
            names: property_names(kind).iter().map(|&n| Arc::from(n)).collect(),
        }
    }

    fn props(&self, values: Vec<String>) -> Props {
        Props::from_sorted(self.names.iter().cloned().zip(values).collect())
    }
}

fn rng_for(seed: u64, kind: ObjectKind, index: u64) -> StdRng {
    // SplitMix64-style mixing so neighbouring indices get unrelated streams.
    let mut z = seed
        ^ (kind as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Name and domain of seeded company number `j` (id `j + 1`).
fn company_identity(seed: u64, j: u64) -> (String, String) {
    company_from(&mut rng_for(seed, ObjectKind::Companies, j), j + 1)
}

/// A company name and a domain unique to company `id`.
fn company_from(rng: &mut StdRng, id: u64) -> (String, String) {
    let adj = ADJECTIVES.choose(rng).copied().unwrap_or("Acme");
    let noun = NOUNS.choose(rng).copied().unwrap_or("Labs");
    let suffix = SUFFIXES.choose(rng).copied().unwrap_or("Inc");
    let name = format!("{adj} {noun} {suffix}");
    let domain = format!(
        "{}-{}-{id}.example",
        adj.to_lowercase(),
        noun.to_lowercase()
    );
    (name, domain)
}

/// The seeded records of one object kind: ids `1..=n`, creation times spread
/// over 2023 in id order, modification times up to 180 days later, all whole
/// seconds (so some records share an `updatedAt`).
pub fn seed_records(kind: ObjectKind, seed: u64, n: usize) -> Vec<Record> {
    let keys = Keys::new(kind);
    let spacing = (YEAR_SECS / (n.max(1) as i64)).max(1);
    (0..n as u64)
        .map(|i| {
            let id = i + 1;
            let created_s = i as i64 * spacing;
            // A record-specific stream, independent of the property stream.
            let mut trng = rng_for(seed ^ 0x7153_7A3F, kind, i);
            let created_ms = SEED_EPOCH_MS + (created_s + trng.random_range(0..spacing)) * 1000;
            let updated_ms = created_ms + trng.random_range(0..MAX_AGE_SECS) * 1000;
            let mut rng = rng_for(seed, kind, i);
            let values = match kind {
                ObjectKind::Contacts => contact_values(&mut rng, seed, n as u64, id),
                ObjectKind::Companies => {
                    let (name, domain) = company_identity(seed, i);
                    let industry = pick(&mut rng, INDUSTRIES);
                    vec![domain, industry, name]
                }
                ObjectKind::Deals => deal_values(&mut rng),
            };
            Record {
                id,
                props: keys.props(values),
                created_ms,
                updated_ms,
                archived_ms: None,
            }
        })
        .collect()
}

/// Properties for a record created at runtime (`/_sandbox/mutate`): contacts
/// work at one of the `companies` seeded companies of `seed`.
pub fn new_props(kind: ObjectKind, rng: &mut StdRng, seed: u64, companies: u64, id: u64) -> Props {
    let values = match kind {
        ObjectKind::Contacts => contact_values(rng, seed, companies, id),
        ObjectKind::Companies => {
            let (name, domain) = company_from(rng, id);
            vec![domain, pick(rng, INDUSTRIES), name]
        }
        ObjectKind::Deals => deal_values(rng),
    };
    Keys::new(kind).props(values)
}

/// A realistic change to one non-unique property (used by `/_sandbox/mutate`).
pub fn changed_prop(kind: ObjectKind, rng: &mut StdRng) -> (&'static str, String) {
    match (kind, rng.random_range(0..2)) {
        (ObjectKind::Contacts, 0) => ("phone", phone(rng)),
        (ObjectKind::Contacts, _) => ("lastname", pick(rng, LAST)),
        (ObjectKind::Companies, 0) => ("industry", pick(rng, INDUSTRIES)),
        (ObjectKind::Companies, _) => (
            "name",
            format!(
                "{} {} {}",
                pick(rng, ADJECTIVES),
                pick(rng, NOUNS),
                pick(rng, SUFFIXES)
            ),
        ),
        (ObjectKind::Deals, 0) => ("amount", amount(rng)),
        (ObjectKind::Deals, _) => ("dealstage", pick(rng, DEAL_STAGES)),
    }
}

fn contact_values(rng: &mut StdRng, seed: u64, companies: u64, id: u64) -> Vec<String> {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let (company, domain) = company_identity(seed, rng.random_range(0..companies.max(1)));
    let local: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>()
        .to_lowercase();
    let email = format!("{local}.{id}@{domain}");
    // Sorted by property name: company, email, firstname, lastname, phone.
    vec![company, email, first, last, phone(rng)]
}

fn deal_values(rng: &mut StdRng) -> Vec<String> {
    let (name, _) = company_from(rng, 0);
    let kind = pick(rng, DEAL_KINDS);
    vec![
        amount(rng),
        format!("{name} – {kind}"),
        pick(rng, DEAL_STAGES),
        "default".to_owned(),
    ]
}

fn phone(rng: &mut StdRng) -> String {
    format!(
        "+1 555-{:03}-{:04}",
        rng.random_range(100..1000),
        rng.random_range(0..10_000)
    )
}

fn amount(rng: &mut StdRng) -> String {
    format!("{}.00", rng.random_range(5..2_000) * 50)
}

fn pick(rng: &mut StdRng, from: &[&str]) -> String {
    from.choose(rng).copied().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same seed ⇒ same records; different seed ⇒ different data; record i does not depend on n.
    #[test]
    fn deterministic() {
        let a = seed_records(ObjectKind::Contacts, 7, 50);
        let b = seed_records(ObjectKind::Contacts, 7, 50);
        let c = seed_records(ObjectKind::Contacts, 8, 50);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let small = seed_records(ObjectKind::Deals, 7, 10);
        let big = seed_records(ObjectKind::Deals, 7, 20);
        assert_eq!(small[3].props, big[3].props);
    }

    /// Seeded properties are complete, sorted, and contact emails are unique.
    #[test]
    fn realistic_and_unique() {
        for kind in ObjectKind::ALL {
            let recs = seed_records(kind, 42, 200);
            for r in &recs {
                let names: Vec<&str> = r.props.iter().map(|(k, _)| k).collect();
                assert_eq!(names, property_names(kind), "{kind:?}");
                assert!(r.updated_ms >= r.created_ms);
            }
        }
        let contacts = seed_records(ObjectKind::Contacts, 42, 2000);
        let emails: std::collections::HashSet<_> = contacts
            .iter()
            .map(|r| r.props.get("email").unwrap())
            .collect();
        assert_eq!(emails.len(), 2000);
        assert!(contacts[0].props.get("email").unwrap().contains('@'));
    }
}
