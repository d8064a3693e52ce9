//! A topology written out as a document that [`super::validate::check_document`] accepts and
//! that describes the same topology: what `confab topology export` prints.

use confab_store::{PoolKind, TopologySpec};
use serde::Serialize;

use super::validate::kind_name;

#[derive(Serialize)]
struct Document<'a> {
    domains: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    site: Vec<SiteOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pool: Vec<PoolOut<'a>>,
}

#[derive(Serialize)]
struct SiteOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct PoolOut<'a> {
    name: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_hop: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pair: Option<&'a str>,
}

/// `spec` as a TOML topology document, with a comment saying where it came from.
pub fn to_document(spec: &TopologySpec, header: &str) -> Result<String, toml::ser::Error> {
    let doc = Document {
        domains: &spec.domains,
        site: spec
            .sites
            .iter()
            .map(|s| SiteOut {
                name: &s.name,
                description: s.description.as_deref(),
            })
            .collect(),
        pool: spec
            .pools
            .iter()
            .map(|p| PoolOut {
                name: &p.name,
                kind: kind_name(p.kind),
                site: p.site.as_deref(),
                // A front-end pool always says which servers it has, even none.
                servers: (p.kind == PoolKind::Confab).then_some(p.servers.as_slice()),
                next_hop: p.next_hop.as_deref(),
                pair: p.pair.as_deref(),
            })
            .collect(),
    };
    let body = toml::to_string(&doc)?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    if !header.is_empty() {
        out.push('\n');
    }
    out.push_str(&body);
    Ok(out)
}
