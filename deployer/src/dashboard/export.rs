//! `deployer graph --format dot|mermaid|json`: the dashboard's graph as text, for docs and CI.
//! The same [`Graph`] the page draws, so the three formats and the page agree.

use std::fmt::Write as _;

use super::graph::{Graph, Health};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
    Json,
}

pub(crate) fn render(graph: &Graph, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Dot => dot(graph),
        Format::Mermaid => mermaid(graph),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(graph)?),
    })
}

/// The colour the page gives each health (the page's stylesheet uses the same values).
pub(crate) fn colour(health: Health) -> &'static str {
    match health {
        Health::Ok => "#2e7d32",
        Health::Degraded => "#ef8f00",
        Health::Failing => "#d32f2f",
        Health::Idle | Health::Unknown => "#9e9e9e",
    }
}

fn lock(verified: bool) -> &'static str {
    if verified {
        "🔒 "
    } else {
        ""
    }
}

/// Graphviz: quoted ids, so any service name is safe; `dot -Tsvg` draws it.
fn dot(graph: &Graph) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out =
        String::from("digraph mesh {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for n in &graph.nodes {
        let label = match &n.version {
            Some(v) => format!("{} {v}", n.service),
            None => n.service.clone(),
        };
        let style = if n.reachable {
            ""
        } else {
            ", style=\"rounded,dashed\", color=\"#d32f2f\""
        };
        let shape = if n.kind == "gateway" {
            ", shape=hexagon"
        } else {
            ""
        };
        let _ = writeln!(out, "  {} [label={}{shape}{style}];", q(&n.id), q(&label));
    }
    for e in &graph.edges {
        let style = if e.health == Health::Idle {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color={}{style}];",
            q(&e.from),
            q(&e.to),
            q(&format!("{}{}", lock(e.verified), e.label)),
            q(colour(e.health))
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid's flowchart: node ids are made safe (`n0`, `n1`, …), labels quoted.
fn mermaid(graph: &Graph) -> String {
    let q = |s: &str| s.replace('"', "#quot;");
    let ids: std::collections::BTreeMap<&str, String> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
        .collect();
    let id = |node: &str| ids.get(node).cloned().unwrap_or_else(|| "unknown".into());
    let mut out = String::from("flowchart LR\n");
    for n in &graph.nodes {
        let label = match &n.version {
            Some(v) => format!("{} {v}", n.service),
            None => n.service.clone(),
        };
        let (open, close) = if n.kind == "gateway" {
            ("{{", "}}")
        } else {
            ("(", ")")
        };
        let _ = writeln!(out, "  {}{open}\"{}\"{close}", id(&n.id), q(&label));
    }
    for (i, e) in graph.edges.iter().enumerate() {
        let arrow = if e.health == Health::Idle {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{}{}\"| {}",
            id(&e.from),
            lock(e.verified),
            q(&e.label),
            id(&e.to)
        );
        let _ = writeln!(out, "  linkStyle {i} stroke:{}", colour(e.health));
    }
    for n in graph.nodes.iter().filter(|n| !n.reachable) {
        let _ = writeln!(
            out,
            "  style {} stroke:#d32f2f,stroke-dasharray:4",
            id(&n.id)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::graph::tests::figures;
    use super::super::graph::Observed;
    use super::*;

    fn graph() -> Graph {
        let f = |s: &str, d: &str, n: u64| {
            let mut row = figures(s, d, n, 1.0, 1.0);
            row.signals.rps = n as f64;
            row.signals.p99_ms = Some(4.0);
            row.signals.mtls_share = Some(1.0);
            row
        };
        let observed = Observed {
            services: vec!["service-a".into(), "service-b".into()],
            gateway: Some("gateway".into()),
            unreachable: ["service-b".to_owned()].into(),
            down: Vec::new(),
            total: vec![f("gateway", "service-a", 4), f("service-a", "service-b", 2)],
            window: vec![f("gateway", "service-a", 4)],
            window_s: 1.0,
        };
        Graph::build(1, &observed, "x")
    }

    #[test]
    fn dot_names_every_node_and_edge_with_its_label_and_colour() {
        let text = render(&graph(), Format::Dot).unwrap();
        assert!(text.starts_with("digraph mesh {\n"), "{text}");
        assert!(
            text.contains("  \"gateway\" [label=\"gateway\", shape=hexagon];\n"),
            "{text}"
        );
        assert!(
            text.contains("\"service-b\" [label=\"service-b\", style=\"rounded,dashed\""),
            "{text}"
        );
        assert!(
            text.contains(
                "  \"gateway\" -> \"service-a\" [label=\"🔒 4.0 rps · 100.0% · p99 4.0ms\", color=\"#2e7d32\"];\n"
            ),
            "{text}"
        );
        // The callee could not be read: grey, not dashed (it is not known to be idle).
        assert!(
            text.contains("\"service-a\" -> \"service-b\" [label=\"🔒 0.0 rps · - · p99 -\", color=\"#9e9e9e\"];"),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn mermaid_uses_safe_ids_and_styles_each_link() {
        let text = render(&graph(), Format::Mermaid).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "flowchart LR",
                "  n0{{\"gateway\"}}",
                "  n1(\"service-a\")",
                "  n2(\"service-b\")",
                "  n0 -->|\"🔒 4.0 rps · 100.0% · p99 4.0ms\"| n1",
                "  linkStyle 0 stroke:#2e7d32",
                "  n1 -->|\"🔒 0.0 rps · - · p99 -\"| n2",
                "  linkStyle 1 stroke:#9e9e9e",
                "  style n2 stroke:#d32f2f,stroke-dasharray:4",
            ]
        );
    }

    #[test]
    fn json_is_the_api_graph() {
        let g = graph();
        let text = render(&g, Format::Json).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::to_value(&g).unwrap()
        );
    }
}
