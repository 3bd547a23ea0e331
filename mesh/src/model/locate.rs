//! Where a field is in a mesh file: a path of keys and list positions (`services[1].port`) and
//! the line it starts on, so a refused mesh names the field's own line, as a compiler does.
//! The line comes from the YAML parser the file was read with (serde_norway): a probe walks the
//! path and stops there with an error, which the parser marks with its position.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path: a mapping key or a list position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field's path in the mesh file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn key(key: &str) -> FieldPath {
        FieldPath(vec![Seg::Key(key.to_owned())])
    }

    /// `services[i]`, then `rest` as a traffic rule spells its field (`fault.abort.percent`,
    /// `match[0].version`).
    pub fn service(i: usize, rest: &str) -> FieldPath {
        FieldPath::entry("services", i, rest)
    }

    /// `external[i]`, then `rest` (`callers[0]`).
    pub fn external(i: usize, rest: &str) -> FieldPath {
        FieldPath::entry("external", i, rest)
    }

    /// `<list>[i]`, then `rest` as a dotted field path with indices.
    fn entry(list: &str, i: usize, rest: &str) -> FieldPath {
        let mut path = vec![Seg::Key(list.to_owned()), Seg::Index(i)];
        for part in rest.split('.').filter(|p| !p.is_empty()) {
            let (key, indices) = part.split_once('[').unwrap_or((part, ""));
            path.push(Seg::Key(key.to_owned()));
            for index in indices.split('[') {
                if let Ok(n) = index.trim_end_matches(']').parse() {
                    path.push(Seg::Index(n));
                }
            }
        }
        FieldPath(path)
    }

    /// The same path under another first key (`names[i]` for `services[i]`).
    pub fn with_root(&self, key: &str) -> FieldPath {
        let mut path = self.0.clone();
        if let Some(first) = path.first_mut() {
            *first = Seg::Key(key.to_owned());
        }
        FieldPath(path)
    }

    pub fn root(&self) -> Option<&str> {
        match self.0.first() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The text a probe's error carries when it reaches its target.
const HERE: &str = "meshtally-locate-here";

/// The 1-based line where `path` starts in the YAML `text`, or of the deepest part of it the
/// file has (a service given as a bare name has no `.port` line: its own line is the answer).
pub fn line_of(text: &str, path: &FieldPath) -> Option<usize> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    let err = Probe(&path.0).deserialize(deserializer).err()?;
    err.location().map(|l| l.line())
}

struct Probe<'a>(&'a [Seg]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => deserializer.deserialize_any(Here),
            Some(Seg::Key(_)) => deserializer.deserialize_map(Walk(self.0)),
            Some(Seg::Index(_)) => deserializer.deserialize_seq(Walk(self.0)),
        }
    }
}

/// At the target: any node stops the probe with [`HERE`], marked at the node.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
}

/// A mapping key; the wanted one, when it is the path's last step, stops the probe there.
struct Key<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        // Refused inside the visitor, while the parser stands on the key: the error is marked
        // with the key's line.
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if self.last && key == self.want {
            return Err(E::custom(HERE));
        }
        Ok(key.to_owned())
    }
}

/// On the way: a mapping (find the key) or a list (count to the position). A node of another
/// shape (a bare service name where a mapping was expected) is itself the answer.
struct Walk<'a>(&'a [Seg]);

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        // The last key stops at the key itself (a `versions:` line, not its first item's).
        let last = rest.is_empty();
        while let Some(key) = map.next_key_seed(Key { want, last })? {
            if key == *want {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        // Not in the file (a default, or a flag's value).
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe(rest))?;
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_fields() {
        let text = "namespace: demo\nservices:\n  - name: a\n    versions:\n      - {name: v1, weight: 90}\n      - {name: v2, weight: 20}\n  - b\n  - name: c\n    port: 70000\n";
        let at = |p: FieldPath| line_of(text, &p);
        assert_eq!(at(FieldPath::key("namespace")), Some(1));
        assert_eq!(at(FieldPath::service(0, "versions")), Some(4));
        assert_eq!(at(FieldPath::service(0, "versions[1].weight")), Some(6));
        assert_eq!(at(FieldPath::service(2, "port")), Some(9));
        // A bare name has no port line: its own line.
        assert_eq!(at(FieldPath::service(1, "port")), Some(7));
        assert_eq!(
            FieldPath::service(0, "match[0].version").to_string(),
            "services[0].match[0].version"
        );
        assert_eq!(
            line_of(
                "names: [a, b, a]\n",
                &FieldPath::service(2, "").with_root("names")
            ),
            Some(1)
        );
        // What the file does not say has no line.
        assert_eq!(at(FieldPath::key("replicas")), None);
        assert_eq!(at(FieldPath::service(5, "port")), None);
    }
}
