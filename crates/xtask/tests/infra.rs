//! Deployment ordering of `infra/*.bicep`, read from the Bicep itself (no
//! `bicep`/`az` CLI here): Cosmos DB refuses concurrent control-plane
//! operations on one account, and Azure Managed Redis applies one
//! access-policy assignment at a time, so no two Cosmos SQL role assignments
//! and no two Redis access-policy assignments may be able to run at once.
//!
//! ARM runs resources in parallel unless one depends on the other (an
//! explicit `dependsOn`, or a symbolic reference such as `parent:` or
//! `x.outputs`), and runs a copy loop's members in parallel unless it is
//! `@batchSize(1)`. A module instantiated in a loop runs its copies in
//! parallel, so such assignments must not live in a module. The checks:
//!
//! 1. no serialized resource type is declared in `infra/modules/`;
//! 2. every loop of one is `@batchSize(1)`;
//! 3. any two declarations of one type (in `main.bicep`) are ordered: one
//!    depends on the other, directly or through others;
//! 4. every Cosmos SQL role assignment waits for the database and container.
//!
//! The parser knows only top-level declarations (a line starting with
//! `resource`/`module`, its `@` decorators above, its body up to the next
//! top-level line); references are the other declarations' symbolic names
//! appearing in a body outside `//` comments and string literals (but inside
//! their `${…}` interpolations).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Resource types whose declarations must never run at once.
const SERIALIZED: [&str; 3] = [
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments",
    "Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments",
    "Microsoft.Cache/redis/accessPolicyAssignments",
];

const COSMOS_ROLE: &str = "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments";
const COSMOS_PREREQUISITES: [&str; 2] = [
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers",
];

#[derive(Debug, Clone)]
struct Decl {
    symbol: String,
    /// Resource type without API version; `module` for modules.
    kind: String,
    existing: bool,
    is_loop: bool,
    batch_size_one: bool,
    body: String,
    line: usize,
}

/// The line's code: string literals keep only their `${…}` interpolations
/// (a name in a URL is no reference) and a `//` comment is dropped.
fn strip_comment(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut depth = 0usize; // inside `${…}` of a string
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_string, depth, c) {
            (false, _, '/') if chars.peek() == Some(&'/') => break,
            (false, _, '\'') => in_string = true,
            (true, 0, '\'') => in_string = false,
            (true, 0, '$') if chars.peek() == Some(&'{') => {
                chars.next();
                depth = 1;
                out.push(' ');
            }
            (true, 0, _) => {}
            (true, _, '{') => {
                depth += 1;
                out.push(c);
            }
            (true, _, '}') => {
                depth -= 1;
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

fn parse(text: &str) -> Vec<Decl> {
    let lines: Vec<&str> = text.lines().collect();
    let top = |l: &str| {
        !l.starts_with(' ') && !l.starts_with('\t') && !l.is_empty() && !l.starts_with('}')
    };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let (is_module, rest) = if let Some(r) = l.strip_prefix("resource ") {
            (false, r)
        } else if let Some(r) = l.strip_prefix("module ") {
            (true, r)
        } else {
            continue;
        };
        let symbol = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let kind = if is_module {
            "module".to_owned()
        } else {
            let quoted = rest.split('\'').nth(1).unwrap_or_default();
            quoted.split('@').next().unwrap_or_default().to_owned()
        };
        let head_end = l.find(" = ").map_or(l.len(), |p| p + 3);
        let after_eq = &l[head_end..];
        let mut decorators = Vec::new();
        let mut j = i;
        while j > 0 && lines[j - 1].starts_with('@') {
            decorators.push(lines[j - 1].replace(' ', ""));
            j -= 1;
        }
        let mut body = strip_comment(after_eq);
        for next in &lines[i + 1..] {
            if top(next) {
                break;
            }
            body.push_str(&strip_comment(next));
            body.push('\n');
        }
        out.push(Decl {
            symbol,
            kind,
            existing: l.contains("' existing = "),
            is_loop: after_eq.trim_start().starts_with("[for "),
            batch_size_one: decorators.iter().any(|d| d == "@batchSize(1)"),
            body,
            line: i + 1,
        });
    }
    out
}

fn mentions(body: &str, symbol: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    body.match_indices(symbol).any(|(p, _)| {
        let before = body[..p].chars().next_back();
        let after = body[p + symbol.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// symbol → every symbol it depends on, directly or not.
fn dependencies(decls: &[Decl]) -> BTreeMap<String, BTreeSet<String>> {
    let direct: BTreeMap<String, BTreeSet<String>> = decls
        .iter()
        .map(|d| {
            let deps = decls
                .iter()
                .filter(|o| o.symbol != d.symbol && mentions(&d.body, &o.symbol))
                .map(|o| o.symbol.clone())
                .collect();
            (d.symbol.clone(), deps)
        })
        .collect();
    let mut closure = direct.clone();
    loop {
        let mut changed = false;
        for (sym, deps) in closure.clone() {
            let mut all = deps.clone();
            for d in &deps {
                all.extend(closure.get(d).cloned().unwrap_or_default());
            }
            if all.len() != deps.len() {
                changed = true;
                closure.insert(sym, all);
            }
        }
        if !changed {
            return closure;
        }
    }
}

/// Every violation in `main` (the top-level template) and `modules` (file name, text).
fn violations(main: &str, modules: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in modules {
        for d in parse(text) {
            if !d.existing && SERIALIZED.contains(&d.kind.as_str()) {
                out.push(format!(
                    "{name}:{}: {} ({}) is in a module, whose copies run in parallel: declare it in main.bicep",
                    d.line, d.symbol, d.kind
                ));
            }
        }
    }
    let decls = parse(main);
    let deps = dependencies(&decls);
    let depends = |a: &Decl, b: &Decl| deps[&a.symbol].contains(&b.symbol);
    for kind in SERIALIZED {
        let group: Vec<&Decl> = decls
            .iter()
            .filter(|d| d.kind == kind && !d.existing)
            .collect();
        for d in &group {
            if d.is_loop && !d.batch_size_one {
                out.push(format!(
                    "main.bicep:{}: the loop {} ({kind}) needs @batchSize(1)",
                    d.line, d.symbol
                ));
            }
        }
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                if !depends(a, b) && !depends(b, a) {
                    out.push(format!(
                        "main.bicep:{}/{}: {} and {} ({kind}) can run at once: add a dependsOn",
                        a.line, b.line, a.symbol, b.symbol
                    ));
                }
            }
        }
    }
    for role in decls
        .iter()
        .filter(|d| d.kind == COSMOS_ROLE && !d.existing)
    {
        for pre in decls
            .iter()
            .filter(|d| COSMOS_PREREQUISITES.contains(&d.kind.as_str()))
        {
            if !depends(role, pre) {
                out.push(format!(
                    "main.bicep:{}: {} does not wait for {} ({})",
                    role.line, role.symbol, pre.symbol, pre.kind
                ));
            }
        }
    }
    out
}

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask has two parents")
        .join("infra")
}

/// The repository's templates: every serialized assignment is ordered.
#[test]
fn infra_assignments_never_run_at_once() {
    let dir = infra();
    let main = std::fs::read_to_string(dir.join("main.bicep")).unwrap();
    let mut modules = Vec::new();
    for e in std::fs::read_dir(dir.join("modules")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bicep") {
            let name = format!("modules/{}", p.file_name().unwrap().to_string_lossy());
            modules.push((name, std::fs::read_to_string(&p).unwrap()));
        }
    }
    let decls = parse(&main);
    for kind in [COSMOS_ROLE, SERIALIZED[1]] {
        assert!(
            decls.iter().any(|d| d.kind == kind),
            "main.bicep declares no {kind}: the parser or the template changed"
        );
    }
    let v = violations(&main, &modules);
    assert!(v.is_empty(), "{}", v.join("\n"));
}

const PLANTED: &str = "\
resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: 'c'
}

resource db 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: db
}

@batchSize(1)
resource appRoles 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [for i in range(0, 3): {
  parent: cosmos
  dependsOn: [ db, container ]
}]

resource operator 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos // appRoles is only named in this comment
  properties: { url: 'https://example.org/appRoles' }
}

resource redisAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = [for i in range(0, 2): {
  name: 'a${i}'
}]
";

/// Planted violations are each reported: two unordered Cosmos assignments
/// (a mention in a comment or a URL is no dependency), one not waiting for
/// the container, a loop without @batchSize(1), an assignment in a module;
/// fixing them clears the report.
#[test]
fn planted_violations_are_reported() {
    let module = (
        "modules/app.bicep".to_owned(),
        "resource r 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {\n}\n"
            .to_owned(),
    );
    let v = violations(PLANTED, std::slice::from_ref(&module));
    let has = |s: &str| v.iter().any(|m| m.contains(s));
    assert!(has("appRoles and operator"), "{v:#?}");
    assert!(has("operator does not wait for db"), "{v:#?}");
    assert!(has("operator does not wait for container"), "{v:#?}");
    assert!(has("the loop redisAccess"), "{v:#?}");
    assert!(has("modules/app.bicep:1"), "{v:#?}");
    assert!(!has("appRoles does not wait"), "{v:#?}");
    assert_eq!(v.len(), 5, "{v:#?}");

    let fixed = PLANTED
        .replace(
            "  parent: cosmos // appRoles",
            "  dependsOn: [ appRoles, db, container ]\n  parent: cosmos // appRoles",
        )
        .replace(
            "resource redisAccess",
            "@description('x')\n@batchSize(1)\nresource redisAccess",
        );
    assert_eq!(violations(&fixed, &[]), Vec::<String>::new());
}
