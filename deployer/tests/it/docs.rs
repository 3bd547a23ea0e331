//! The documentation held to the code.
//!
//! - `docs/reference/cli.md` is generated from the clap definitions: a heading and the long
//!   help for `deployer` and every visible subcommand. `UPDATE_GOLDEN=1 cargo test -p
//!   meshtally-deployer --test it docs::` rewrites it; otherwise it must equal the rendering.
//! - Every `deployer …` command line in a code block of `README.md` or `docs/**/*.md` parses
//!   with the CLI as built (`Cli::try_parse_from`). Parsed, not run. A command is every line of
//!   a ```sh / ```bash / ```shell block, and every `$ ` prompt line of any other block (the
//!   other lines of a ```console block are output); `\` continuations are joined, `# comments`
//!   dropped, and chains (`&&`, `||`, `|`, `;`, `&`) split, each part checked when it runs
//!   `deployer` (by name or path, after any `VAR=value`) or `cargo run … -p meshtally-deployer
//!   -- …`.
//! - Every relative link in those files points at a file of the repository, and an `#anchor`
//!   into a Markdown file at one of its headings (GitHub's heading ids).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use meshtally_deployer::Cli;

const CLI_MD: &str = "docs/reference/cli.md";

use crate::common::{documents, workspace as root};

// ---- the CLI reference ------------------------------------------------------------------------

fn cli_reference() -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let mut sections = Vec::new();
    collect(&mut cmd, "deployer", 0, &mut sections);
    let mut out = String::from(
        "# CLI reference\n\n\
         <!-- Generated from the clap definitions by deployer/tests/it/docs.rs: do not edit. \
         After a change to the command line: UPDATE_GOLDEN=1 cargo test -p meshtally-deployer \
         --test it docs:: -->\n\n\
         Every command's `--help`, as the `deployer` of this checkout prints it. The guides that \
         show the commands at work are linked from the [README](../../README.md).\n\n",
    );
    for (path, depth, _) in &sections {
        let indent = "  ".repeat(*depth);
        out.push_str(&format!(
            "{indent}- [`{path}`](#{})\n",
            slug(&format!("`{path}`"))
        ));
    }
    for (path, depth, help) in &sections {
        let hashes = "#".repeat((depth + 2).min(6));
        out.push_str(&format!("\n{hashes} `{path}`\n\n```text\n{help}\n```\n"));
    }
    out
}

/// (command path, depth, long help) for `cmd` and its visible subcommands, depth first.
fn collect(
    cmd: &mut clap::Command,
    path: &str,
    depth: usize,
    out: &mut Vec<(String, usize, String)>,
) {
    let help = cmd.render_long_help().to_string();
    let help: Vec<&str> = help.lines().map(str::trim_end).collect();
    out.push((
        path.to_owned(),
        depth,
        help.join("\n").trim_end().to_owned(),
    ));
    for sub in cmd.get_subcommands_mut() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let name = format!("{path} {}", sub.get_name());
        collect(sub, &name, depth + 1, out);
    }
}

#[test]
fn cli_reference_is_generated_from_clap() {
    let path = root().join(CLI_MD);
    let want = cli_reference();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the length".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "{CLI_MD} differs from the CLI as built (at {line}); regenerate it with \
             `UPDATE_GOLDEN=1 cargo test -p meshtally-deployer --test it docs::` and review the diff"
        );
    }
}

/// The README's table of what each API expresses is the code's own list (the one the model's
/// refusals come from), between its markers.
#[test]
fn dialect_table_is_generated_from_the_refusals() {
    const OPEN: &str = "<!-- dialects: ";
    const CLOSE: &str = "<!-- /dialects -->";
    let path = root().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(OPEN).expect("README.md has no dialects marker");
    let body_start = start + text[start..].find("-->\n").unwrap() + 4;
    let end = text
        .find(CLOSE)
        .expect("README.md has no closing dialects marker");
    let want = meshtally_mesh::model::dialect::markdown_table();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{want}{}", &text[..body_start], &text[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &text[body_start..end],
        want,
        "README.md's table differs from mesh/src/model/dialect.rs: regenerate it with \
         `UPDATE_GOLDEN=1 cargo test -p meshtally-deployer --test it docs::`"
    );
}

// ---- documented commands ----------------------------------------------------------------------

/// A shell word or an operator between commands.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Op,
}

/// Splits one shell command line into words and chain operators: quotes (`'…'`, `"…"`) and
/// backslash escapes as the shell reads them, `$(…)` kept inside its word, a `#` that starts a
/// word ending the line. Variables are left as written.
fn shell_tokens(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut depth = 0; // inside $( … )
    let end_word = |tokens: &mut Vec<Token>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if depth > 0 {
            word.push(c);
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            word.push(chars.next().unwrap());
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                in_word = true;
                word.push('$');
                word.push(chars.next().unwrap());
                depth = 1;
            }
            '#' if !in_word => break,
            ' ' | '\t' => end_word(&mut tokens, &mut word, &mut in_word),
            ';' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                tokens.push(Token::Op);
            }
            '|' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                if chars.peek() == Some(&'|') {
                    chars.next();
                }
                tokens.push(Token::Op);
            }
            // `2>&1`, `&>`: a redirection, not a chain.
            '&' if word.ends_with('>') || chars.peek() == Some(&'>') => {
                in_word = true;
                word.push('&');
            }
            '&' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                if chars.peek() == Some(&'&') {
                    chars.next();
                }
                tokens.push(Token::Op);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut tokens, &mut word, &mut in_word);
    tokens
}

/// The arguments (program name first) of each `deployer` run in one command line.
fn deployer_runs(line: &str) -> Vec<Vec<String>> {
    let tokens = shell_tokens(line);
    tokens
        .split(|t| *t == Token::Op)
        .filter_map(|part| {
            let mut words: Vec<String> = Vec::new();
            let mut skip_next = false;
            for t in part {
                let Token::Word(w) = t else { continue };
                if skip_next {
                    skip_next = false;
                    continue;
                }
                // Redirections: `> file`, `2> file`, `>file`, `2>&1`, `&> file`, `< file`.
                let r = w.trim_start_matches(|c: char| c.is_ascii_digit());
                if r.starts_with(['>', '<']) || r.starts_with("&>") {
                    let target = r.trim_start_matches(['>', '<', '&']);
                    skip_next = target.is_empty();
                    continue;
                }
                words.push(w.clone());
            }
            // Leading `VAR=value` assignments.
            let first = words
                .iter()
                .position(|w| {
                    !w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                })
                .unwrap_or(words.len());
            let words = &words[first..];
            let program = words.first()?;
            if program == "deployer" || program.ends_with("/deployer") {
                let mut args = vec!["deployer".to_owned()];
                args.extend(words[1..].iter().cloned());
                return Some(args);
            }
            let runs_deployer = program == "cargo"
                && words.get(1).is_some_and(|w| w == "run")
                && words
                    .windows(2)
                    .any(|p| (p[0] == "-p" || p[0] == "--package") && p[1] == "meshtally-deployer");
            if runs_deployer {
                let dashes = words.iter().position(|w| w == "--")?;
                let mut args = vec!["deployer".to_owned()];
                args.extend(words[dashes + 1..].iter().cloned());
                return Some(args);
            }
            None
        })
        .collect()
}

/// Every command line of the document's code blocks, as (line number, command).
fn code_commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<(String, String)> = None; // (marker, language)
    let mut heredoc: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        match &fence {
            None => {
                if let Some(rest) = line.strip_prefix("```") {
                    let marker = "`".repeat(3 + rest.chars().take_while(|c| *c == '`').count());
                    let lang = rest.trim_start_matches('`').trim().to_lowercase();
                    fence = Some((marker, lang));
                }
                continue;
            }
            Some((marker, _)) if line.starts_with(marker.as_str()) => {
                out.extend(pending.take());
                fence = None;
                heredoc = None;
                continue;
            }
            Some(_) => {}
        }
        let lang = &fence.as_ref().unwrap().1;
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let (start, piece) = match pending.take() {
            Some((start, so_far)) => (start, format!("{so_far} {line}")),
            None => {
                let shell = matches!(lang.as_str(), "sh" | "bash" | "shell" | "zsh");
                match line.strip_prefix("$ ") {
                    Some(cmd) => (i + 1, cmd.to_owned()),
                    None if shell => (i + 1, line.to_owned()),
                    None => continue,
                }
            }
        };
        if let Some(joined) = piece.strip_suffix('\\') {
            pending = Some((start, joined.trim_end().to_owned()));
            continue;
        }
        if let Some(at) = piece.find("<<") {
            let tag: String = piece[at + 2..]
                .trim_start_matches('-')
                .trim_start()
                .trim_matches(|c| c == '\'' || c == '"')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !tag.is_empty() {
                heredoc = Some(tag);
            }
        }
        out.push((start, piece));
    }
    out
}

#[test]
fn every_documented_deployer_command_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        for (line, command) in code_commands(&text) {
            for args in deployer_runs(&command) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                        continue;
                    }
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_owned();
                    failures.push(format!(
                        "{}:{line}: `{}`: {first}",
                        path.display(),
                        args.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} documented deployer commands do not parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked >= 20,
        "only {checked} deployer commands found in the docs"
    );
}

// ---- links ------------------------------------------------------------------------------------

/// GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Text with inline code spans blanked out, so `[a](b)` inside backticks is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else {
            out.push(if in_code { ' ' } else { c });
        }
    }
    out
}

/// `[text](target)` → `text`, for heading ids.
fn link_text_only(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find("](") {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace('[', "")
}

/// The lines of a document outside fenced code blocks, with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match &fence {
                None => {
                    fence = Some("`".repeat(3 + rest.chars().take_while(|c| *c == '`').count()))
                }
                Some(marker) if trimmed.starts_with(marker.as_str()) => fence = None,
                Some(_) => {}
            }
            continue;
        }
        if fence.is_none() {
            out.push((i + 1, line));
        }
    }
    out
}

/// The heading ids of a Markdown document.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&link_text_only(&line[hashes..]));
        let mut id = base.clone();
        let mut n = 0;
        while seen.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        seen.insert(id);
    }
    seen
}

/// Link targets of one line: `[text](target)`, `![alt](target)`, `[ref]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    if let Some(rest) = line.trim_start().strip_prefix('[') {
        if let Some((_, target)) = rest.split_once("]:") {
            out.push(
                target
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
            return out;
        }
    }
    let mut rest = line.as_str();
    while let Some(open) = rest.find("](") {
        let after = &rest[open + 2..];
        let mut depth = 0;
        let end = after
            .char_indices()
            .find(|&(_, c)| match c {
                '(' => {
                    depth += 1;
                    false
                }
                ')' if depth == 0 => true,
                ')' => {
                    depth -= 1;
                    false
                }
                _ => false,
            })
            .map_or(after.len(), |(i, _)| i);
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        out.push(target.trim_matches(['<', '>']).to_owned());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let root = root();
    let docs = documents();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, text) in &docs {
        let dir = path.parent().unwrap_or(Path::new(""));
        for (line, content) in prose(text) {
            for target in link_targets(content) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((file, anchor)) => (file, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let at = format!("{}:{line}: {target}", path.display());
                let resolved = if file.is_empty() {
                    path.clone()
                } else {
                    normalize(&dir.join(file))
                };
                if resolved.starts_with("..") {
                    failures.push(format!("{at}: outside the repository"));
                    continue;
                }
                let full = root.join(&resolved);
                if !full.exists() {
                    failures.push(format!("{at}: no such file"));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if full.extension().is_some_and(|e| e == "md") {
                        let text = std::fs::read_to_string(&full).unwrap();
                        if !anchors(&text).contains(anchor) {
                            failures.push(format!("{at}: no heading with that id"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} relative links are broken:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `a/b/../c` → `a/c`, keeping leading `..` (a path that leaves the root).
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else {
                    parts.push("..".as_ref());
                }
            }
            std::path::Component::CurDir => {}
            other => parts.push(other.as_os_str()),
        }
    }
    parts.iter().collect()
}

// ---- the test's own parsers ---------------------------------------------------------------------

#[test]
fn shell_lines_are_split_as_the_shell_would() {
    assert_eq!(
        deployer_runs("cd /tmp && deployer up --detach && deployer verify && deployer down"),
        vec![
            vec!["deployer", "up", "--detach"],
            vec!["deployer", "verify"],
            vec!["deployer", "down"]
        ]
    );
    assert_eq!(
        deployer_runs("deployer graph --format dot | dot -Tsvg > mesh.svg   # a picture"),
        vec![vec!["deployer", "graph", "--format", "dot"]]
    );
    assert_eq!(
        deployer_runs("target/release/deployer apply --kubectl .tools/bin/kubectl 2>&1 >out"),
        vec![vec!["deployer", "apply", "--kubectl", ".tools/bin/kubectl"]]
    );
    assert_eq!(
        deployer_runs(r#"X=1 deployer up --plugin-config '{"max_hops": 3}' --names "a b""#),
        vec![vec![
            "deployer",
            "up",
            "--plugin-config",
            r#"{"max_hops": 3}"#,
            "--names",
            "a b"
        ]]
    );
    assert_eq!(
        deployer_runs("cargo run -q --release -p meshtally-deployer -- push --insecure"),
        vec![vec!["deployer", "push", "--insecure"]]
    );
    assert_eq!(
        deployer_runs("for i in $(seq 3); do curl -s x; done | sort"),
        Vec::<Vec<String>>::new()
    );
    let block = "```console\n$ deployer up \\\n    --detach\ndeployer 0.1.0\n```\n\
                 ```sh\ndeployer down   # stop\n```\n";
    assert_eq!(
        code_commands(block),
        vec![
            (2, "deployer up --detach".to_owned()),
            (7, "deployer down   # stop".to_owned())
        ]
    );
}

#[test]
fn heading_ids_are_githubs() {
    assert_eq!(
        slug("Seeing the mesh: `top`, `edges`, `tap`, `status` and Prometheus"),
        "seeing-the-mesh-top-edges-tap-status-and-prometheus"
    );
    assert_eq!(
        anchors("# A\n## A\n```\n# not a heading\n```\n## [B](x.md) c\n"),
        ["a", "a-1", "b-c"].into_iter().map(String::from).collect()
    );
}
