//! Prometheus's text exposition format, as Envoy's `/stats/prometheus` writes it: one sample per
//! line, `name{label="value",…} value`, comments skipped. `top` reads meshtally's counters and
//! duration buckets from it, with the labels Envoy's `stats_tags` extracted, exactly as a
//! Prometheus scrape sees them.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Every sample of `text` whose name starts with `prefix`; lines that do not parse are skipped
/// (Envoy writes none, and a reader of live stats should not fail on one).
pub(crate) fn parse(text: &str, prefix: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest.get(..eq)?.trim().to_owned();
            let (value, after) = quoted(rest.get(eq + 1..)?)?;
            labels.insert(key, value);
            rest = after;
        }
    }
    // A timestamp may follow the value; Envoy writes none.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A `"…"` label value with `\\`, `\"` and `\n` escapes; returns it and the text after it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut chars = body.char_indices();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, body.get(i + 1..)?)),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// A histogram bucket's upper bound (`le`), `+Inf` included.
pub(crate) fn le(sample: &Sample) -> Option<f64> {
    match sample.label("le")? {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVOY: &str = r#"# TYPE meshtally_requests_total counter
meshtally_requests_total{source="service-a",destination="service-b",direction="inbound",response_code_class="2xx",connection_security_policy="mutual_tls"} 25
# TYPE envoy_cluster_upstream_rq counter
envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="app"} 3
meshtally_request_duration_milliseconds_bucket{source="a",destination="b",le="0.5"} 1
meshtally_request_duration_milliseconds_bucket{source="a",destination="b",le="+Inf"} 4
meshtally_request_duration_milliseconds_sum{source="a",destination="b"} 12.5
"#;

    #[test]
    fn reads_envoy_samples_with_labels() {
        let samples = parse(ENVOY, "meshtally_");
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "meshtally_requests_total");
        assert_eq!(
            samples[0].label("connection_security_policy"),
            Some("mutual_tls")
        );
        assert_eq!(samples[0].value, 25.0);
        assert_eq!(le(&samples[1]), Some(0.5));
        assert_eq!(le(&samples[2]), Some(f64::INFINITY));
        assert_eq!(samples[3].value, 12.5);
        assert_eq!(le(&samples[3]), None);
    }

    #[test]
    fn escapes_and_bad_lines() {
        let s = parse(
            "m{a=\"x\\\"y\\\\z\\n\",b=\"\"} 1 1700000000\nm{a=\"open} 2\nm 3\nm{} +Inf\nm{a=\"1\"} nope\n",
            "m",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("a"), Some("x\"y\\z\n"));
        assert_eq!(s[0].label("b"), Some(""));
        assert!(s[1].labels.is_empty());
        assert_eq!(s[1].value, 3.0);
        assert_eq!(s[2].value, f64::INFINITY);
    }
}
