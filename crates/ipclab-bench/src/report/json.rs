//! The JSON export: the [`Run`] as it is (schema in the README).

use anyhow::{Context, Result, bail};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::results::{Run, SCHEMA};

pub fn render(run: &Run) -> String {
    let mut s = serde_json::to_string_pretty(run).expect("a Run always serialises");
    s.push('\n');
    s
}

/// Reads a run written by [`render`] (schema 1 to 3), refusing other
/// schema versions.
///
/// No `serde_json::Value` of the whole file is built (it takes about ten
/// times the file's size): one pass checks the syntax, one reads the
/// schema version alone, one the run.
pub fn parse(text: &str, what: &str) -> Result<Run> {
    serde_json::from_str::<IgnoredAny>(text)
        .with_context(|| format!("{what} is not valid JSON"))?;
    let version =
        match serde_json::from_str::<Schema>(text).map(|s| s.0.as_ref().and_then(|v| v.as_u64())) {
            // Schema 1 lacks the repetitions and intervals; its fields default.
            Ok(Some(v)) if (1..=SCHEMA as u64).contains(&v) => v,
            Ok(Some(v)) => {
                bail!("{what} has schema version {v}; this ipclab reads versions 1 to {SCHEMA}")
            }
            _ => bail!("{what} is not an ipclab result file (no schema version)"),
        };
    serde_json::from_str(text).with_context(|| format!("{what} does not match schema {version}"))
}

/// The `schema` field of a top-level object; everything else is skipped
/// unread. Anything but an object is an error.
struct Schema(Option<serde_json::Value>);

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Schema;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Schema, A::Error> {
                let mut schema = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "schema" {
                        schema = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Schema(schema))
            }
        }
        d.deserialize_map(Fields)
    }
}
