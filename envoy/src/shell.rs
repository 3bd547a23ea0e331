//! Words and command lines quoted for a POSIX shell, so every command the deployer prints (a
//! hint, a dry run) can be pasted as it is.

use std::fmt::Write as _;

/// `program args…` quoted for a POSIX shell, so a printed command can be pasted as is.
pub fn shell_line(program: &str, args: &[String]) -> String {
    let mut line = quote(program);
    for arg in args {
        let _ = write!(line, " {}", quote(arg));
    }
    line
}

/// One word, quoted only when the shell would otherwise split or expand it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_the_shell_would_change() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("/tmp/state-1"), "/tmp/state-1");
        assert_eq!(quote("/tmp/my state"), "'/tmp/my state'");
        assert_eq!(quote(""), "''");
        assert_eq!(
            shell_line("kubectl", &["get".into(), "a b".into()]),
            "kubectl get 'a b'"
        );
    }
}
