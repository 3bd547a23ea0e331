//! The JSON the plugin config needs, and no more: a strict RFC 8259 reader into a small value
//! tree, with errors in serde_json's words and positions (`expected `,` or `}` at line 1 column
//! 28`). It exists for the module's size: serde_json (with its float parser and BTreeMap) was
//! ~18 KB of the module; the crates built for small code were measured against it (see
//! `BENCHMARKS.md`, module size) and were larger than this. The workspace keeps serde_json
//! everywhere size does not matter, and the fuzz tests hold this reader to it: it accepts
//! exactly what serde_json accepts, and reads the same values.

/// A parsed JSON value. Arrays keep no elements: no config field takes one.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array,
    /// Members in document order, a repeated key keeping its last value (as serde_json's map).
    Object(Vec<(String, Json)>),
}

/// A number as serde_json classifies it: non-negative and negative integers that fit 64 bits,
/// else a float (whose value no config field needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    U64(u64),
    I64(i64),
    Float,
}

impl Json {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(Number::U64(n)) => Some(*n),
            _ => None,
        }
    }
}

/// serde_json's nesting limit: the 128th open bracket is refused.
const DEPTH: u32 = 128;

/// The digits of the smallest number that rounds to infinity in f64 (its decimal exponent is
/// 308): f64::MAX plus half an ulp, 2^1024 − 2^970, as a tie rounds to the even neighbour,
/// 2^1024.
const F64_LIMIT: &[u8] = b"179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792";

/// Parses one JSON value filling the whole input (whitespace around it allowed).
pub fn parse(input: &[u8]) -> Result<Json, String> {
    let mut reader = Reader {
        input,
        at: 0,
        depth: DEPTH,
    };
    let value = reader.value()?;
    reader.skip_whitespace();
    if reader.at < input.len() {
        return Err(reader.peek_error("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
    depth: u32,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    /// An error at `end` bytes into the input: the line, and the column as the count of bytes
    /// since the line's start (serde_json's positions).
    fn error_at(&self, what: &str, end: usize) -> String {
        let seen = self.input.get(..end).unwrap_or(self.input);
        let line = 1 + seen.iter().filter(|b| **b == b'\n').count();
        let column = seen.iter().rev().take_while(|b| **b != b'\n').count();
        format!("{what} at line {line} column {column}")
    }

    /// At the byte about to be read (or the end).
    fn peek_error(&self, what: &str) -> String {
        self.error_at(what, (self.at + 1).min(self.input.len()))
    }

    /// At the last byte read.
    fn error(&self, what: &str) -> String {
        self.error_at(what, self.at)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.peek_error("EOF while parsing a value")),
            Some(b'n') => self.word(b"null", Json::Null),
            Some(b't') => self.word(b"true", Json::Bool(true)),
            Some(b'f') => self.word(b"false", Json::Bool(false)),
            Some(b'"') => {
                self.at += 1;
                self.string().map(Json::String)
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(b'[') => self.nested(b']', "list", |r| r.value().map(drop)),
            Some(b'{') => {
                let mut members: Vec<(String, Json)> = Vec::new();
                self.nested(b'}', "object", |r| {
                    r.skip_whitespace();
                    match r.peek() {
                        Some(b'"') => r.at += 1,
                        None => return Err(r.peek_error("EOF while parsing an object")),
                        Some(_) => return Err(r.peek_error("key must be a string")),
                    }
                    let key = r.string()?;
                    r.skip_whitespace();
                    match r.peek() {
                        Some(b':') => r.at += 1,
                        None => return Err(r.peek_error("EOF while parsing an object")),
                        Some(_) => return Err(r.peek_error("expected `:`")),
                    }
                    let value = r.value()?;
                    members.retain(|(k, _)| *k != key);
                    members.push((key, value));
                    Ok(())
                })?;
                Ok(Json::Object(members))
            }
            Some(_) => Err(self.peek_error("expected value")),
        }
    }

    /// An array or object: `item` for each element, separated by commas, up to `close`.
    fn nested(
        &mut self,
        close: u8,
        kind: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<Json, String> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.peek_error("recursion limit exceeded"));
        }
        self.at += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.at += 1;
        } else {
            loop {
                item(self)?;
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_whitespace();
                        if self.peek() == Some(close) {
                            return Err(self.peek_error("trailing comma"));
                        }
                    }
                    Some(b) if b == close => {
                        self.at += 1;
                        break;
                    }
                    None => return Err(self.peek_error(&format!("EOF while parsing a{kind}"))),
                    Some(_) if close == b']' => return Err(self.peek_error("expected `,` or `]`")),
                    Some(_) => return Err(self.peek_error("expected `,` or `}`")),
                }
            }
        }
        self.depth += 1;
        Ok(Json::Array)
    }

    fn word(&mut self, word: &[u8], value: Json) -> Result<Json, String> {
        for &want in word {
            match self.peek() {
                None => return Err(self.peek_error("EOF while parsing a value")),
                Some(b) if b == want => self.at += 1,
                Some(_) => {
                    self.at += 1;
                    return Err(self.error("expected ident"));
                }
            }
        }
        Ok(value)
    }

    /// A string's contents, after its opening quote.
    fn string(&mut self) -> Result<String, String> {
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.peek_error("EOF while parsing a string"));
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.peek_error("EOF while parsing a string"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    out.push(c);
                }
                0..=0x1f => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid unicode code point"))
    }

    fn hex4(&mut self) -> Result<u16, String> {
        let mut n: u16 = 0;
        for _ in 0..4 {
            let Some(b) = self.peek() else {
                return Err(self.peek_error("EOF while parsing a string"));
            };
            self.at += 1;
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(self.error("invalid escape")),
            };
            n = n * 16 + u16::from(digit);
        }
        Ok(n)
    }

    /// `\uXXXX`, after the `u`; a leading surrogate must be followed by `\u` and a trailing one.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xdc00..=0xdfff => return Err(self.error("lone leading surrogate in hex escape")),
            0xd800..=0xdbff => {
                if self.peek() != Some(b'\\') {
                    return Err(self.peek_error("unexpected end of hex escape"));
                }
                self.at += 1;
                if self.peek() != Some(b'u') {
                    return Err(self.peek_error("unexpected end of hex escape"));
                }
                self.at += 1;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                0x10000 + ((u32::from(first) - 0xd800) << 10) + (u32::from(second) - 0xdc00)
            }
            _ => u32::from(first),
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))
    }

    /// Skips a run of digits, returning how many.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Number, String> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_len = self.digits();
        let leading_zero = self.input.get(self.at - int_len) == Some(&b'0');
        match int_len {
            0 if self.at >= self.input.len() => {
                return Err(self.peek_error("EOF while parsing a value"))
            }
            0 => return Err(self.peek_error("invalid number")),
            // A leading zero stands alone: `01` is no number.
            2.. if leading_zero => {
                self.at -= int_len - 1;
                return Err(self.peek_error("invalid number"));
            }
            _ => {}
        }
        let int_start = self.at - int_len;
        let mut float = false;
        let mut frac_len = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            frac_len = self.digits();
            if frac_len == 0 {
                return Err(self.peek_error(if self.at >= self.input.len() {
                    "EOF while parsing a value"
                } else {
                    "invalid number"
                }));
            }
            float = true;
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative_exp = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let count = self.digits();
            if count == 0 {
                return Err(self.peek_error(if self.at >= self.input.len() {
                    "EOF while parsing a value"
                } else {
                    "invalid number"
                }));
            }
            let digits = self.input.get(self.at - count..self.at).unwrap_or_default();
            for &d in digits {
                exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 40);
            }
            if negative_exp {
                exponent = -exponent;
            }
            float = true;
        }
        let int = self
            .input
            .get(int_start..int_start + int_len)
            .unwrap_or_default();
        if !float {
            let mut n: u64 = 0;
            let fits = int.iter().all(|&d| {
                match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                {
                    Some(next) => {
                        n = next;
                        true
                    }
                    None => false,
                }
            });
            if fits && !negative {
                return Ok(Number::U64(n));
            }
            if fits && negative {
                if n == 0 {
                    // serde_json reads `-0` as the float -0.0.
                    return Ok(Number::Float);
                }
                if let Ok(i) = i64::try_from(n) {
                    return Ok(Number::I64(-i));
                }
                if n == 1 << 63 {
                    return Ok(Number::I64(i64::MIN));
                }
            }
        }
        // A float (or an integer past 64 bits): refused only when it rounds to infinity.
        let frac_start = int_start + int_len + 1;
        let frac = if frac_len > 0 {
            self.input
                .get(frac_start..frac_start + frac_len)
                .unwrap_or_default()
        } else {
            &[]
        };
        let mut digits = int.to_vec();
        digits.extend_from_slice(frac);
        let lead = digits
            .iter()
            .position(|d| *d != b'0')
            .unwrap_or(digits.len());
        let significant = digits.get(lead..).unwrap_or_default();
        if significant.is_empty() {
            return Ok(Number::Float);
        }
        // The decimal exponent of the first significant digit, after `zeros` leading zeros of
        // the digits before and after the point.
        let zeros = (int_len + frac_len - significant.len()) as i64;
        let magnitude = exponent + int_len as i64 - 1 - zeros;
        let too_big = match magnitude {
            309.. => true,
            // Compared as fractions 0.ddd, so without trailing zeros (the limit has none).
            308 => {
                let end = significant
                    .iter()
                    .rposition(|d| *d != b'0')
                    .map_or(0, |i| i + 1);
                significant.get(..end).unwrap_or_default() >= F64_LIMIT
            }
            _ => false,
        };
        if too_big {
            return Err(self.error("number out of range"));
        }
        Ok(Number::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse(b" null "), Ok(Json::Null));
        assert_eq!(parse(b"true"), Ok(Json::Bool(true)));
        assert_eq!(parse(b"0"), Ok(Json::Number(Number::U64(0))));
        assert_eq!(parse(b"-5"), Ok(Json::Number(Number::I64(-5))));
        assert_eq!(
            parse(b"-9223372036854775808"),
            Ok(Json::Number(Number::I64(i64::MIN)))
        );
        assert_eq!(
            parse(b"18446744073709551615"),
            Ok(Json::Number(Number::U64(u64::MAX)))
        );
        for float in [
            "18446744073709551616",
            "1.5",
            "1e3",
            "-0",
            "1.7976931348623157e308",
        ] {
            assert_eq!(
                parse(float.as_bytes()),
                Ok(Json::Number(Number::Float)),
                "{float}"
            );
        }
        assert_eq!(
            parse(br#""a\u00e9\ud83d\ude00\n""#),
            Ok(Json::String("aé😀\n".into()))
        );
        assert_eq!(
            parse(br#"{"a":1,"b":[1,{"c":[]}],"a":2}"#),
            Ok(Json::Object(vec![
                ("b".into(), Json::Array),
                ("a".into(), Json::Number(Number::U64(2))),
            ]))
        );
    }

    #[test]
    fn errors_say_what_and_where_as_serde_json_does() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"{\"max_hops\":0x10}",
                "expected `,` or `}` at line 1 column 14",
            ),
            (b"{\"a\":1e400}", "number out of range at line 1 column 10"),
            (b"{", "EOF while parsing an object at line 1 column 1"),
            (b"[1,]", "trailing comma at line 1 column 4"),
            (b"{\n\"a\" 1}", "expected `:` at line 2 column 5"),
            (b"nul", "EOF while parsing a value at line 1 column 3"),
            (b"{} x", "trailing characters at line 1 column 4"),
            (b"01", "invalid number at line 1 column 2"),
            (b"{1:2}", "key must be a string at line 1 column 2"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse(raw).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
