//! A small block-style YAML writer for serde. Written because a 1000-service mesh renders to
//! about 120 MB (every service lists every other one), which serde_norway's emitter writes in
//! over a second; this one only copies bytes. It emits the subset our manifests need: maps,
//! sequences, strings, integers and booleans, in the layout kubectl users expect (sequences
//! under a key are not indented). A string is written plain only when it cannot be read back
//! as anything else under YAML 1.1 or 1.2; otherwise it is single-quoted, or double-quoted
//! with escapes when it holds control characters. Tests read its output back with serde_norway.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

#[derive(Debug)]
pub struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Appends `value` to `out` as one YAML document, preceded by a `---` line.
pub fn push_document(out: &mut String, value: &impl Serialize) -> Result<(), Error> {
    out.push_str("---\n");
    let mut writer = Writer {
        out: std::mem::take(out),
        at: At::Top,
    };
    let result = value.serialize(&mut writer);
    *out = writer.out;
    result
}

/// `value` as one YAML document, without a `---` line.
pub fn to_string(value: &impl Serialize) -> Result<String, Error> {
    let mut out = String::new();
    push_document(&mut out, value)?;
    Ok(out.split_off(4))
}

/// Where the next value goes, given what was written last.
#[derive(Debug, Clone, Copy)]
enum At {
    /// The document's start.
    Top,
    /// Right after `key:` of a mapping whose keys sit at this indent.
    AfterKey(usize),
    /// Right after `- ` of a sequence whose dashes sit at this indent.
    AfterDash(usize),
}

struct Writer {
    out: String,
    at: At,
}

impl Writer {
    fn scalar(&mut self, text: &str) {
        if let At::AfterKey(_) = self.at {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn string(&mut self, s: &str) {
        if let At::AfterKey(_) = self.at {
            self.out.push(' ');
        }
        push_string(&mut self.out, s);
        self.out.push('\n');
    }

    fn indent(&mut self, mut n: usize) {
        const SPACES: &str = "                                ";
        while n > 0 {
            let step = n.min(SPACES.len());
            self.out.push_str(&SPACES[..step]);
            n -= step;
        }
    }

    /// Opens a collection: where its entries go, and whether the first one continues the
    /// current line (after `- `) or starts a new one.
    fn open(&mut self, is_seq: bool) -> Collection {
        let (indent, inline) = match self.at {
            At::Top => (0, false),
            // Sequences under a key line their dashes up with the key; mappings indent by 2.
            At::AfterKey(k) if is_seq => (k, false),
            At::AfterKey(k) => (k + 2, false),
            At::AfterDash(d) => (d + 2, true),
        };
        Collection {
            indent,
            inline,
            opened_at: self.at,
            first: true,
        }
    }
}

struct Collection {
    indent: usize,
    inline: bool,
    opened_at: At,
    first: bool,
}

/// Bytes that are never special inside a plain scalar in block context (`:` is handled apart).
const SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'/' | b'=' | b',' | b'@' | b'+' | b':'
            );
        b += 1;
    }
    table
};

/// True when `s` reads back as the same string if written without quotes. Conservative: a
/// letter or `/` first (so nothing numeric, no indicator), then only characters that are never
/// special in block context (so no `: `, which starts a value), no trailing `:`, and no YAML 1.1
/// boolean or null word.
fn plain_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    const WORDS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    (first.is_ascii_alphabetic() || first == b'/')
        && bytes.iter().all(|&b| SAFE[usize::from(b)])
        && !s.ends_with(':')
        && !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// Characters that must be escaped, which only a double-quoted scalar can do: controls, and
/// the Unicode line breaks YAML 1.1 honours.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Plain when unambiguous; else single-quoted (readable for JSON values, `'` doubled); else,
/// for strings with characters only an escape can carry, double-quoted.
fn push_string(out: &mut String, s: &str) {
    if plain_ok(s) {
        out.push_str(s);
    } else if !s.chars().any(needs_escape) {
        out.push('\'');
        for (i, part) in s.split('\'').enumerate() {
            if i > 0 {
                out.push_str("''");
            }
            out.push_str(part);
        }
        out.push('\'');
    } else {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

impl Collection {
    /// Starts an entry: a newline or indentation as needed. The caller writes the entry.
    fn entry(&mut self, w: &mut Writer) {
        if self.first {
            if let At::AfterKey(_) = self.opened_at {
                w.out.push('\n');
            }
            if !self.inline {
                w.indent(self.indent);
            }
            self.first = false;
        } else {
            w.indent(self.indent);
        }
    }

    fn key(&mut self, w: &mut Writer, key: &str) {
        self.entry(w);
        push_string(&mut w.out, key);
        w.out.push(':');
        w.at = At::AfterKey(self.indent);
    }

    fn item(&mut self, w: &mut Writer) {
        self.entry(w);
        w.out.push_str("- ");
        w.at = At::AfterDash(self.indent);
    }

    fn close(self, w: &mut Writer, empty: &str) {
        if self.first {
            w.at = self.opened_at;
            w.scalar(empty);
        }
    }
}

mod key;
mod serializer;

#[cfg(test)]
mod tests;
