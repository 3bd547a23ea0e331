//! Durations in the mesh file (`300ms`, `2s`, `1m`, `1h`), kept as whole milliseconds so the
//! model stays `Eq`, and written back in the two spellings the back-ends want: Istio's (`300ms`,
//! `2s`) and protobuf JSON's for Envoy (`0.300s`).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// Parses `<digits><unit>` with unit `ms`, `s`, `m` or `h`.
    pub fn parse(text: &str) -> Option<Millis> {
        let text = text.trim();
        let digits_end = text.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = text.split_at(digits_end);
        let n: u64 = digits.parse().ok()?;
        let scale = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        n.checked_mul(scale).map(Millis)
    }

    /// Protobuf JSON's Duration, as Envoy reads it: seconds with up to three decimals.
    pub fn envoy(self) -> String {
        match self.0 % 1000 {
            0 => format!("{}s", self.0 / 1000),
            ms => format!("{}.{ms:03}s", self.0 / 1000),
        }
    }

    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

/// Istio's spelling: whole seconds as `2s`, anything else as `300ms`.
impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor, so a bad duration is refused while the YAML deserializer still stands at
        // the value: the error then carries the field's own path and line (`timeout` at line
        // 3), not its service entry's.
        struct MillisVisitor;

        impl de::Visitor<'_> for MillisVisitor {
            type Value = Millis;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 300ms or 2s")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Millis, E> {
                Millis::parse(text).ok_or_else(|| {
                    E::custom(format!(
                        "duration `{text}` is not a whole number followed by ms, s, m or h (e.g. 300ms, 2s)"
                    ))
                })
            }
        }

        deserializer.deserialize_str(MillisVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_spells_both_ways() {
        assert_eq!(Millis::parse("300ms"), Some(Millis(300)));
        assert_eq!(Millis::parse("2s"), Some(Millis(2000)));
        assert_eq!(Millis::parse("1m"), Some(Millis(60_000)));
        assert_eq!(Millis::parse("1h"), Some(Millis(3_600_000)));
        for bad in [
            "",
            "s",
            "2",
            "1.5s",
            "-1s",
            "2 s",
            "3d",
            "99999999999999999999h",
        ] {
            assert_eq!(Millis::parse(bad), None, "{bad}");
        }
        assert_eq!(Millis(300).to_string(), "300ms");
        assert_eq!(Millis(2000).to_string(), "2s");
        assert_eq!(Millis(300).envoy(), "0.300s");
        assert_eq!(Millis(1500).envoy(), "1.500s");
        assert_eq!(Millis(30_000).envoy(), "30s");
        let e = serde_norway::from_str::<Millis>("2sec").unwrap_err();
        assert!(e.to_string().contains("duration `2sec`"), "{e}");
    }
}
