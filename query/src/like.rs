//! `LIKE` / `ILIKE` patterns: `%` matches any run of characters, `_` one
//! character, and a backslash makes the next character literal
//! (PostgreSQL's default escape).

/// One pattern element.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A literal character.
    Char(char),
    /// `_`.
    One,
    /// `%`.
    Any,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct LikePattern {
    tokens: Vec<Token>,
    case_insensitive: bool,
}

impl LikePattern {
    /// Compiles `pattern`; `case_insensitive` for ILIKE.
    pub(crate) fn new(pattern: &str, case_insensitive: bool) -> LikePattern {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let t = match c {
                '%' => Token::Any,
                '_' => Token::One,
                '\\' => Token::Char(chars.next().unwrap_or('\\')),
                c => Token::Char(if case_insensitive { fold(c) } else { c }),
            };
            // Consecutive % are one %.
            if t == Token::Any && tokens.last() == Some(&Token::Any) {
                continue;
            }
            tokens.push(t);
        }
        LikePattern {
            tokens,
            case_insensitive,
        }
    }

    /// Whether `s` matches the whole pattern.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let text: Vec<char> = if self.case_insensitive {
            s.chars().map(fold).collect()
        } else {
            s.chars().collect()
        };
        // Iterative matching with backtracking to the last %.
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Token::One) => {
                    t += 1;
                    p += 1;
                }
                Some(Token::Char(c)) if text.get(t) == Some(c) => {
                    t += 1;
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens
            .get(p..)
            .is_some_and(|rest| rest.iter().all(|x| *x == Token::Any))
    }
}

fn fold(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    #[test]
    fn patterns() {
        let m = |p: &str, s: &str| LikePattern::new(p, false).matches(s);
        assert!(m("/v1/%", "/v1/users"));
        assert!(!m("/v1/%", "/v2/users"));
        assert!(m("%users%", "/v1/users/7"));
        assert!(m("a_c", "abc"));
        assert!(!m("a_c", "abbc"));
        assert!(m("%", ""));
        assert!(!m("_", ""));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("%a%b%c", "xxaxxbxxc"));
        assert!(!m("%a%b%c", "xxaxxbxxcx"));
        assert!(LikePattern::new("GET%", true).matches("get /x"));
        assert!(!LikePattern::new("GET%", false).matches("get /x"));
    }
}
