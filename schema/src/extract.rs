//! Hashtag and mention extraction, as `EVENTS.md` defines it.
//!
//! A hashtag is `#` followed by one or more Unicode letters, digits or `_`; a mention is the same
//! after `@`. Both are case-folded and deduplicated in order of first appearance. A `#` or `@` that
//! follows a letter, digit or `_` does not start one, so `ana@example.com` mentions nobody and
//! `C#` is not a tag.

/// Most hashtags one caption or comment may carry; more is a validation error.
pub const MAX_HASHTAGS: usize = 30;
/// Most mentions one caption or comment may carry; more is a validation error.
pub const MAX_MENTIONS: usize = 20;

/// What a caption or comment refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Tags without `#`, case-folded, in order of first appearance, distinct.
    pub hashtags: Vec<String>,
    /// Usernames without `@`, case-folded, in order of first appearance, distinct.
    pub mentions: Vec<String>,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Extracts every distinct hashtag and mention of `text`. The lists are not truncated: the
/// caller decides whether too many is an error.
pub fn extract(text: &str) -> Extracted {
    let mut out = Extracted::default();
    let mut prev_is_word = false;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if (c == '#' || c == '@') && !prev_is_word {
            let body_start = start + c.len_utf8();
            let mut end = body_start;
            while let Some(&(i, n)) = chars.peek() {
                if !is_word(n) {
                    break;
                }
                end = i + n.len_utf8();
                chars.next();
            }
            if end > body_start {
                let word = text[body_start..end].to_lowercase();
                let list = if c == '#' {
                    &mut out.hashtags
                } else {
                    &mut out.mentions
                };
                if !list.contains(&word) {
                    list.push(word);
                }
                // A marker right after a tag starts the next one: `#one#two` is two tags.
                prev_is_word = false;
                continue;
            }
        }
        prev_is_word = is_word(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(text: &str) -> (Vec<String>, Vec<String>) {
        let e = extract(text);
        (e.hashtags, e.mentions)
    }

    #[test]
    fn example_of_events_md() {
        let (h, m) = tags("Golden hour at the pier #Sunset #travel @ana");
        assert_eq!(h, ["sunset", "travel"]);
        assert_eq!(m, ["ana"]);
    }

    #[test]
    fn case_folded_and_deduplicated_in_order_of_first_appearance() {
        let (h, _) = tags("#B #a #b #A #c");
        assert_eq!(h, ["b", "a", "c"]);
    }

    #[test]
    fn unicode_letters_digits_and_underscore() {
        let (h, m) = tags("#Café_2024 #東京 @Zoë_99! #ÉTÉ.");
        assert_eq!(h, ["café_2024", "東京", "été"]);
        assert_eq!(m, ["zoë_99"]);
    }

    #[test]
    fn punctuation_ends_a_tag_and_bare_markers_are_ignored() {
        let (h, m) = tags("# @ #ok, @ana. #x-y ##double");
        assert_eq!(h, ["ok", "x", "double"]);
        assert_eq!(m, ["ana"]);
    }

    #[test]
    fn markers_inside_words_do_not_start_tags() {
        let (h, m) = tags("mail ana@example.com about C# and a#b");
        assert!(h.is_empty());
        assert!(m.is_empty());
    }

    #[test]
    fn adjacent_tags_both_count() {
        let (h, m) = tags("#one#two @a@b");
        assert_eq!(h, ["one", "two"]);
        assert_eq!(m, ["a", "b"]);
    }
}
