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

#[cfg(test)]
mod tests {
    use super::normalize_title;

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
    }

    #[test]
    fn non_ascii_letters_are_lowercased_not_dropped() {
        assert_eq!(normalize_title("ÖKOSIM"), "ökosim");
        assert_eq!(normalize_title(""), "");
        assert_eq!(normalize_title("™ ®"), "");
    }
}
