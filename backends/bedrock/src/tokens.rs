//! A conservative token estimate for Marengo's text limits (77 tokens for 2.7, 500 for 3.0).
//!
//! Marengo's tokenizer is not published as a Rust crate, so the provider estimates instead of
//! counting, and errs on the high side so that text it lets through is within the model's limit:
//!
//! - a run of ASCII letters and digits counts one token per 4 characters, rounded up (common
//!   English words are one token; BPE tokenizers split long and rare words into pieces of about
//!   that size);
//! - every other ASCII character that is not white space (punctuation, symbols) counts one;
//! - every non-ASCII character counts two (byte-level BPE splits most of them into one to three
//!   tokens; CJK characters are usually one or two);
//! - two more for the start and end markers the model adds.
//!
//! "a photo of a castle at sunset" is estimated at 12 tokens (its real count is about 9).

/// Tokens the start and end markers take.
pub const SPECIAL_TOKENS: usize = 2;

/// The estimated token count of `text` (see the module documentation for the rules).
///
/// ```
/// use crossmodal_bedrock::estimate_tokens;
/// assert_eq!(estimate_tokens("a castle"), 2 + 1 + 2);
/// assert_eq!(estimate_tokens("hi!"), 2 + 1 + 1);
/// assert_eq!(estimate_tokens("城堡"), 2 + 4);
/// ```
pub fn estimate_tokens(text: &str) -> usize {
    let mut tokens = SPECIAL_TOKENS;
    let mut run = 0usize;
    let flush = |run: &mut usize, tokens: &mut usize| {
        *tokens += run.div_ceil(4);
        *run = 0;
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run += 1;
            continue;
        }
        flush(&mut run, &mut tokens);
        if c.is_whitespace() {
            continue;
        }
        tokens += if c.is_ascii() { 1 } else { 2 };
    }
    flush(&mut run, &mut tokens);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_at_least_one_per_word() {
        let text = "a photo of a castle at sunset";
        let words = text.split_whitespace().count();
        assert!(estimate_tokens(text) >= words + SPECIAL_TOKENS);
        assert_eq!(estimate_tokens(text), 12);
        assert_eq!(estimate_tokens(""), SPECIAL_TOKENS);
        assert_eq!(estimate_tokens("   \n\t "), SPECIAL_TOKENS);
    }

    #[test]
    fn long_words_and_symbols_cost_more() {
        assert_eq!(estimate_tokens("antidisestablishmentarianism"), 2 + 7);
        assert_eq!(estimate_tokens("x=1;"), 2 + 1 + 1 + 1 + 1);
        assert_eq!(estimate_tokens("café"), 2 + 1 + 2);
    }

    #[test]
    fn seventy_seven_token_budget_holds_about_fifty_short_words() {
        let words: Vec<&str> = std::iter::repeat_n("dog", 75).collect();
        assert_eq!(estimate_tokens(&words.join(" ")), 77);
        let words: Vec<&str> = std::iter::repeat_n("dog", 76).collect();
        assert_eq!(estimate_tokens(&words.join(" ")), 78);
    }
}
