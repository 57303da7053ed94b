//! What the serde path of [`super::parse_event`] checks before serde sees a
//! message: that it is UTF-8, that it is a JSON object, and that it is not
//! nested too deeply; each failure named in the user's words.
//!
//! Owns: those three checks and their `json` details. Must not touch: field
//! rules (`validate`), the direct scan (which reads only flat objects of
//! UTF-8 text, so it never meets nesting and rejects non-UTF-8 outright).
//!
//! Why here and not in serde: JSON text is UTF-8 (RFC 8259 §8.1), but
//! serde_json skips an ignored string without checking its bytes, and
//! sonic-rs's refusal would otherwise fall back to it; serde's derive reads a
//! top-level array as a struct (`invalid length 1, expected struct Raw with 27
//! elements`); and neither bounds the depth of a value it skips, so a deeply
//! nested extra field would recurse until the stack overflows.

/// Deepest nesting of arrays and objects accepted (the event object itself is
/// level 1): what serde_json accepts for a parsed value (its recursion limit
/// of 128 refuses the 128th level).
pub const MAX_DEPTH: usize = 127;

/// The `json` detail for a message that is not UTF-8, not a JSON object, or
/// nested deeper than [`MAX_DEPTH`]; `None` when serde may read it.
pub(super) fn problem(bytes: &[u8]) -> Option<String> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Some(format!("invalid UTF-8 at byte offset {}", e.valid_up_to()));
    }
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let found = match start.map(|i| bytes[i]) {
        Some(b'{') => return too_deep(bytes).then(|| format!("nested too deeply (more than {MAX_DEPTH} levels)")),
        None => "an empty message",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "text that is not JSON",
    };
    Some(format!("expected a JSON object, found {found}"))
}

/// Whether arrays and objects nest deeper than [`MAX_DEPTH`] (brackets inside
/// strings do not count). Malformed JSON is left to serde.
fn too_deep(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: to the next quote not escaped.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(r#"{{"x":{}{}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1))
    }

    #[test]
    fn utf8_offsets() {
        assert_eq!(problem(b"{\"a\":\"caf\xe9\"}").as_deref(), Some("invalid UTF-8 at byte offset 9"));
        assert_eq!(problem(b"\xef\xbb\xbf{}").as_deref(), Some("expected a JSON object, found text that is not JSON"));
        assert_eq!(problem(b"{\"a\":1}\xc3").as_deref(), Some("invalid UTF-8 at byte offset 7"));
        assert_eq!(problem("{\"a\":\"café\"}".as_bytes()), None);
    }

    #[test]
    fn not_an_object() {
        for (s, found) in [
            ("[1]", "an array"),
            ("  [[[[]]]]", "an array"),
            ("\"x\"", "a string"),
            ("42", "a number"),
            ("-1", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
            ("", "an empty message"),
            (" \r\n", "an empty message"),
            ("<xml/>", "text that is not JSON"),
        ] {
            assert_eq!(problem(s.as_bytes()), Some(format!("expected a JSON object, found {found}")), "{s:?}");
        }
        assert_eq!(problem(b" {"), None, "malformed objects are serde's to name");
    }

    #[test]
    fn depth_limit_counts_levels_outside_strings() {
        assert_eq!(problem(nested(MAX_DEPTH).as_bytes()), None);
        assert_eq!(problem(nested(MAX_DEPTH + 1).as_bytes()).as_deref(), Some("nested too deeply (more than 127 levels)"));
        // brackets in strings, and escaped quotes, are not nesting
        let s = format!(r#"{{"x":"{}","y":"\"[[","z":{}}}"#, "[".repeat(500), "[".repeat(10) + &"]".repeat(10));
        assert_eq!(problem(s.as_bytes()), None);
        let deep = format!(r#"{{"x":"\\","z":{}}}"#, "{\"a\":".repeat(200));
        assert!(problem(deep.as_bytes()).is_some(), "an escaped backslash ends no string early");
    }

    #[test]
    fn depth_limit_is_serde_jsons() {
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH)).is_ok());
        let e = serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1)).expect_err("one level more");
        assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
    }
}
