//! Rules for text that identifies someone or is shown to people.
//!
//! Bidirectional overrides and zero-width characters make two different
//! strings look the same (or one look like another). Identifiers that decide
//! whose data is whose (`end_user_id`, keys) refuse them, so two end users can
//! never collide on screen; labels shown to people have them removed.

/// Whether `c` is an invisible formatting character: a bidirectional control
/// (embedding, override, isolate, mark), a zero-width character, or a byte
/// order mark.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Why an identifier is refused, or `None` when it is acceptable: no control
/// or invisible formatting characters, and no whitespace at either end.
pub fn identifier_problem(text: &str) -> Option<&'static str> {
    if text.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if text.chars().any(is_invisible_format) {
        Some("must not contain bidirectional or zero-width characters")
    } else if text.trim() != text {
        Some("must not start or end with whitespace")
    } else {
        None
    }
}

/// A label for display: invisible formatting and control characters removed,
/// whitespace trimmed.
pub fn display_label(text: &str) -> String {
    text.chars()
        .filter(|c| !is_invisible_format(*c) && !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_what_hides_or_spoofs() {
        assert_eq!(identifier_problem("user-42"), None);
        assert_eq!(identifier_problem("Zoë 名前"), None);
        for bad in [
            "user\u{202E}24",
            "user\u{200B}",
            "\u{FEFF}user",
            "us\u{2066}er",
            "user\n",
            " user",
        ] {
            assert!(identifier_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn labels_lose_invisible_characters() {
        assert_eq!(
            display_label("ann\u{202E}moc.evil@\u{200B}example.com "),
            "annmoc.evil@example.com"
        );
    }
}
