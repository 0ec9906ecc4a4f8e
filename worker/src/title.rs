//! Game title normalization: the identity key that merges one game's offers
//! across stores when no external id (such as a Steam app id) is known.

/// Normalizes a title into a merge key.
///
/// Stores disagree on case, trademark signs, punctuation and spacing, so those
/// are erased: lowercase; ™ ® © dropped; "&" becomes "and"; apostrophes are
/// removed (so "Baldur's Gate" meets "Baldurs Gate" rather than "Baldur s
/// Gate"); every other non-alphanumeric character becomes a space; whitespace
/// collapses. A leading "the " is dropped because stores list the same game
/// with and without the article ("The Witcher 3" / "Witcher 3"), while two
/// different games differing only by a leading "The" are vanishingly rare.
///
/// Edition words ("Deluxe Edition", "GOTY") are kept: they are different
/// products at different prices, and merging them would corrupt comparisons.
pub fn normalize_title(title: &str) -> String {
    let mut spaced = String::with_capacity(title.len());
    for c in title.chars() {
        match c {
            '™' | '®' | '©' | '\'' | '’' | '‘' | 'ʼ' | '`' | '´' => {}
            '&' => spaced.push_str(" and "),
            c if c.is_alphanumeric() => spaced.extend(c.to_lowercase()),
            _ => spaced.push(' '),
        }
    }
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let words = match words.split_first() {
        Some((&"the", rest)) if !rest.is_empty() => rest,
        _ => &words[..],
    };
    words.join(" ")
}

/// The placeholder a `title_strip` pattern puts where the game's title is.
pub const TITLE_PLACEHOLDER: &str = "{title}";

/// A `title_strip` pattern of a site's profile: the text a store puts
/// around its game titles, with `{title}` where the title goes, such as
/// "Buy {title}", "{title} on Steam" or "{title} | GameVault".
///
/// The text before and after `{title}` is literal. It is compared without
/// regard to case, with whitespace runs as single spaces, and never within
/// a word: "Buy {title}" leaves "Buyout 2" alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitlePattern {
    prefix: String,
    suffix: String,
}

/// Why a `title_strip` pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitlePatternError {
    #[error("{0:?} has no {{title}} placeholder; write where the title goes, as in \"Buy {{title}}\" or \"{{title}} on Steam\"")]
    NoPlaceholder(String),
    #[error("{0:?} has {{title}} more than once")]
    TwoPlaceholders(String),
    #[error("{0:?} has no text around {{title}}, so it would strip nothing")]
    NothingToStrip(String),
}

impl TitlePattern {
    pub fn parse(pattern: &str) -> Result<TitlePattern, TitlePatternError> {
        let Some((before, after)) = pattern.split_once(TITLE_PLACEHOLDER) else {
            return Err(TitlePatternError::NoPlaceholder(pattern.to_owned()));
        };
        if after.contains(TITLE_PLACEHOLDER) {
            return Err(TitlePatternError::TwoPlaceholders(pattern.to_owned()));
        }
        let prefix = collapse_spaces(before).trim_start().to_owned();
        let suffix = collapse_spaces(after).trim_end().to_owned();
        if prefix.trim().is_empty() && suffix.trim().is_empty() {
            return Err(TitlePatternError::NothingToStrip(pattern.to_owned()));
        }
        Ok(TitlePattern { prefix, suffix })
    }

    /// `title` without the pattern's text, when it has that text and
    /// something is left; `title` has its whitespace collapsed already.
    pub fn strip<'t>(&self, title: &'t str) -> Option<&'t str> {
        let rest = strip_prefix_ci(title, &self.prefix)?;
        let rest = strip_suffix_ci(rest, &self.suffix)?;
        let rest = rest.trim();
        (!rest.is_empty()).then_some(rest)
    }
}

/// `title` with each pattern that matches stripped in turn, in the order
/// given, and the patterns that did. Patterns that do not parse are left
/// out (sites files are checked when they are loaded).
pub fn strip_title<'p>(title: &str, patterns: &'p [String]) -> (String, Vec<&'p str>) {
    let mut out = title.to_owned();
    let mut applied = Vec::new();
    for text in patterns {
        let Ok(pattern) = TitlePattern::parse(text) else {
            continue;
        };
        if let Some(rest) = pattern.strip(&out) {
            out = rest.to_owned();
            applied.push(text.as_str());
        }
    }
    (out, applied)
}

fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn same_letter(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

/// Whether `a` and `b` would glue into one word.
fn joins_a_word(a: Option<char>, b: Option<char>) -> bool {
    a.is_some_and(char::is_alphanumeric) && b.is_some_and(char::is_alphanumeric)
}

fn strip_prefix_ci<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let mut chars = text.char_indices();
    for p in prefix.chars() {
        let (_, c) = chars.next()?;
        if !same_letter(c, p) {
            return None;
        }
    }
    let rest = chars.as_str();
    (!joins_a_word(prefix.chars().last(), rest.chars().next())).then_some(rest)
}

fn strip_suffix_ci<'t>(text: &'t str, suffix: &str) -> Option<&'t str> {
    let mut end = text.len();
    for p in suffix.chars().rev() {
        let c = text[..end].chars().next_back()?;
        if !same_letter(c, p) {
            return None;
        }
        end -= c.len_utf8();
    }
    let rest = &text[..end];
    (!joins_a_word(rest.chars().next_back(), suffix.chars().next())).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_trademarks_and_spacing_do_not_matter() {
        let key = normalize_title("Portal 2");
        assert_eq!(key, "portal 2");
        assert_eq!(normalize_title("PORTAL 2™"), key);
        assert_eq!(normalize_title("Portal  2"), key);
        assert_eq!(normalize_title("  Portal®\u{a0}2 \n"), key);
    }

    #[test]
    fn sequels_stay_distinct() {
        assert_ne!(normalize_title("Portal"), normalize_title("Portal 2"));
    }

    #[test]
    fn punctuation_becomes_space() {
        assert_eq!(
            normalize_title("Doom: Eternal"),
            normalize_title("DOOM Eternal")
        );
        assert_eq!(normalize_title("Half-Life – Alyx"), "half life alyx");
        assert_eq!(normalize_title("Hello, World!?"), "hello world");
        assert_eq!(
            normalize_title("Wolfenstein II — The New Colossus"),
            "wolfenstein ii the new colossus"
        );
    }

    #[test]
    fn ampersand_reads_as_and() {
        assert_eq!(
            normalize_title("Ratchet & Clank"),
            normalize_title("Ratchet and Clank")
        );
        assert_eq!(normalize_title("Ratchet&Clank"), "ratchet and clank");
    }

    #[test]
    fn apostrophes_vanish_instead_of_splitting_words() {
        assert_eq!(normalize_title("Baldur's Gate 3"), "baldurs gate 3");
        assert_eq!(
            normalize_title("Baldur’s Gate 3"),
            normalize_title("Baldurs Gate 3")
        );
    }

    #[test]
    fn a_leading_article_is_dropped_but_not_a_lone_one() {
        assert_eq!(
            normalize_title("The Witcher 3: Wild Hunt"),
            normalize_title("Witcher 3 - Wild Hunt")
        );
        assert_eq!(normalize_title("The"), "the");
        assert_eq!(normalize_title("Theatre of War"), "theatre of war");
    }

    #[test]
    fn editions_are_kept_apart() {
        assert_ne!(
            normalize_title("Cyberpunk 2077 Deluxe Edition"),
            normalize_title("Cyberpunk 2077")
        );
        for (edition, base) in [
            (
                "The Witcher 3: Wild Hunt - Game of the Year Edition",
                "The Witcher 3: Wild Hunt",
            ),
            ("Fallout 4: GOTY", "Fallout 4"),
            ("Hades (Deluxe Edition)", "Hades"),
            ("Elden Ring Deluxe Edition", "ELDEN RING™"),
        ] {
            assert_ne!(normalize_title(edition), normalize_title(base), "{edition}");
        }
        assert_eq!(
            normalize_title("Fallout 4: GOTY"),
            normalize_title("FALLOUT 4 – goty")
        );
    }

    #[test]
    fn trademark_signs_leave_the_merge_key_but_not_the_title() {
        let shown = "ELDEN RING™ Shadow of the Erdtree®";
        assert_eq!(normalize_title(shown), "elden ring shadow of the erdtree");
        assert_eq!(normalize_title("© Tetris"), normalize_title("Tetris"));
        let patterns = ["{title} on Steam".to_owned()];
        assert_eq!(
            strip_title("ELDEN RING™ on Steam", &patterns).0,
            "ELDEN RING™"
        );
    }

    fn strip(title: &str, pattern: &str) -> Option<String> {
        TitlePattern::parse(pattern)
            .unwrap()
            .strip(title)
            .map(str::to_owned)
    }

    #[test]
    fn a_pattern_strips_its_prefix_or_suffix_in_any_case() {
        assert_eq!(strip("Buy Hades", "Buy {title}").as_deref(), Some("Hades"));
        assert_eq!(strip("BUY Hades", "buy {title}").as_deref(), Some("Hades"));
        assert_eq!(
            strip("Portal 2 on Steam", "{title} on Steam").as_deref(),
            Some("Portal 2")
        );
        assert_eq!(
            strip("Celeste | GameVault", "{title}   |  GameVault ").as_deref(),
            Some("Celeste")
        );
        assert_eq!(
            strip(
                "Buy Hades from the Humble Store",
                "Buy {title} from the Humble Store"
            )
            .as_deref(),
            Some("Hades")
        );
        assert_eq!(
            strip("Hades – Nuuvem", "{title} – Nuuvem").as_deref(),
            Some("Hades")
        );
        assert_eq!(
            strip("Kaufe ÖKOSIM", "kaufe {title}").as_deref(),
            Some("ÖKOSIM")
        );
    }

    #[test]
    fn a_pattern_leaves_other_titles_alone() {
        assert_eq!(strip("Buyout Tycoon", "Buy{title}"), None);
        assert_eq!(strip("Portal 2", "{title} on Steam"), None);
        assert_eq!(strip("Powersteam", "{title}steam"), None);
        assert_eq!(strip("Buy", "Buy {title}"), None);
        assert_eq!(strip("Buy ", "Buy {title}"), None);
        // A sign, unlike a word, needs no space around it.
        assert_eq!(
            strip("Celeste|GameVault", "{title}|GameVault").as_deref(),
            Some("Celeste")
        );
    }

    #[test]
    fn patterns_apply_in_turn_and_editions_stay() {
        let patterns: Vec<String> = ["Buy {title}", "{title} on Steam", "{title} | GameVault"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            strip_title("Buy Hades on Steam", &patterns),
            ("Hades".to_owned(), vec!["Buy {title}", "{title} on Steam"])
        );
        assert_eq!(
            strip_title("Hades Deluxe Edition | GameVault", &patterns).0,
            "Hades Deluxe Edition"
        );
        assert_eq!(
            strip_title("Hades", &patterns),
            ("Hades".to_owned(), vec![])
        );
    }

    #[test]
    fn patterns_without_one_placeholder_and_text_are_refused() {
        assert_eq!(
            TitlePattern::parse("Buy"),
            Err(TitlePatternError::NoPlaceholder("Buy".to_owned()))
        );
        assert_eq!(
            TitlePattern::parse("Buy {Title}"),
            Err(TitlePatternError::NoPlaceholder("Buy {Title}".to_owned()))
        );
        let err = TitlePattern::parse("{title} / {title}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"{title} / {title}\" has {title} more than once"
        );
        let err = TitlePattern::parse("  {title} ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"  {title} \" has no text around {title}, so it would strip nothing"
        );
        assert_eq!(
            TitlePattern::parse("{name} on Steam")
                .unwrap_err()
                .to_string(),
            "\"{name} on Steam\" has no {title} placeholder; write where the title goes, \
             as in \"Buy {title}\" or \"{title} on Steam\""
        );
    }

    #[test]
    fn non_ascii_letters_are_lowercased_not_dropped() {
        assert_eq!(normalize_title("ÖKOSIM"), "ökosim");
        assert_eq!(normalize_title(""), "");
        assert_eq!(normalize_title("™ ®"), "");
    }
}
