//! Field rules of the API model (`shared/finspace/api-constraints.json`): lengths, patterns, ranges.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result, Rule};

/// A regular expression of the model, compiled on first use.
pub struct Pattern {
    source: &'static str,
    regex: LazyLock<Regex>,
}

/// Declares a model pattern; the source is a literal, so it compiles or the tests fail.
macro_rules! pattern {
    ($name:ident = $src:literal) => {
        static $name: Pattern = Pattern {
            source: $src,
            regex: LazyLock::new(|| {
                Regex::new(&model_dialect($src)).expect("model pattern is a valid regex")
            }),
        };
    };
}

/// Rewrites a pattern of the model for the regex crate, keeping what it means there.
///
/// The AWS models' patterns are Java-style regular expressions, where `\d` is `[0-9]`, `\w` is
/// `[a-zA-Z_0-9]` and `\s` is `[ \t\n\x0B\f\r]`; the regex crate's are Unicode classes (Arabic-Indic
/// and fullwidth digits are `\d`, U+3000 is `\s`). Each becomes the regex crate's ASCII class,
/// which means exactly the Java one, inside a bracket class or outside.
fn model_dialect(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else {
                    out.push(c);
                    break;
                };
                let class = match escaped {
                    'd' => "[:digit:]",
                    'D' => "[:^digit:]",
                    'w' => "[:word:]",
                    'W' => "[:^word:]",
                    's' => "[:space:]",
                    'S' => "[:^space:]",
                    _ => {
                        out.extend([c, escaped]);
                        continue;
                    }
                };
                if in_class {
                    out.push_str(class);
                } else {
                    out.push('[');
                    out.push_str(class);
                    out.push(']');
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

// Unanchored where the model leaves them unanchored: `is_match` finds the pattern anywhere.
pattern!(EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,4}");
pattern!(NON_BLANK = r".*\S.*");
pattern!(ROLE_ARN_PATTERN = r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$");
pattern!(ENVIRONMENT_ID_PATTERN = r"^[a-zA-Z0-9]{1,26}$");
pattern!(KX_USER_NAME_PATTERN = r"^[0-9A-Za-z_-]{1,50}$");
// The model's `^(?!aws:)[a-zA-Z+-=._:/]+$`: the regex crate has no look-ahead, so the `aws:`
// prefix is a rule of its own (TAG_KEY_FORBIDDEN_PREFIX).
pattern!(TAG_KEY_PATTERN = r"^[a-zA-Z+-=._:/]+$");
pattern!(TAG_VALUE_PATTERN = r"^[a-zA-Z0-9+-=._:@ ]+$");
pattern!(ANY = r".*");
// The model's `[\s\S]*`: any characters, line breaks included.
pattern!(ANY_AT_ALL = r"(?s).*");
pattern!(REGION_PATTERN = r"^[A-Za-z0-9_/.-]{1,63}$");
pattern!(ACCOUNT_PATTERN = r"^\d{12}$");
pattern!(ACCESS_KEY_ID_PATTERN = r"^[A-Z0-9]+$");

/// The constraints of one string shape of the model.
pub struct Shape {
    min: usize,
    max: usize,
    pattern: &'static Pattern,
}

/// `Email`: 4..320, the model's email pattern.
pub static EMAIL: Shape = Shape { min: 4, max: 320, pattern: &EMAIL_PATTERN };
/// `FirstName` and `LastName`: 1..50, not blank.
pub static NAME: Shape = Shape { min: 1, max: 50, pattern: &NON_BLANK };
/// `UserId`: 1..26, not blank.
pub static USER_ID: Shape = Shape { min: 1, max: 26, pattern: &NON_BLANK };
/// `RoleArn`: 20..2048, an IAM role ARN.
pub static ROLE_ARN: Shape = Shape { min: 20, max: 2048, pattern: &ROLE_ARN_PATTERN };
/// `ClientToken` of finspace-data: 1..128, not blank.
pub static CLIENT_TOKEN: Shape = Shape { min: 1, max: 128, pattern: &NON_BLANK };
/// `ClientToken` of finspace (kdb): 1..36, not blank.
pub static KX_CLIENT_TOKEN: Shape = Shape { min: 1, max: 36, pattern: &NON_BLANK };
/// `IdType` (environmentId): 1..26 letters and digits.
pub static ENVIRONMENT_ID: Shape = Shape { min: 1, max: 26, pattern: &ENVIRONMENT_ID_PATTERN };
/// `KxUserNameString`: 1..50 letters, digits, `_` and `-`.
pub static KX_USER_NAME: Shape = Shape { min: 1, max: 50, pattern: &KX_USER_NAME_PATTERN };
/// A `TagMap` key: 1..128; must also not start with [`TAG_KEY_FORBIDDEN_PREFIX`].
pub static TAG_KEY: Shape = Shape { min: 1, max: 128, pattern: &TAG_KEY_PATTERN };
/// A `TagMap` value: 1..256.
pub static TAG_VALUE: Shape = Shape { min: 1, max: 256, pattern: &TAG_VALUE_PATTERN };
/// The prefix tag keys must not have.
pub const TAG_KEY_FORBIDDEN_PREFIX: &str = "aws:";
/// The region in kdb user ARNs (the ARN pattern's region part, not empty).
pub static REGION: Shape = Shape { min: 1, max: 63, pattern: &REGION_PATTERN };
/// The AWS account in kdb user ARNs: 12 digits.
pub static ACCOUNT: Shape = Shape { min: 12, max: 12, pattern: &ACCOUNT_PATTERN };
/// A permission group's `name`: 1..255, not blank.
pub static GROUP_NAME: Shape = Shape { min: 1, max: 255, pattern: &NON_BLANK };
/// A permission group's `description`: 1..4000, anything.
pub static GROUP_DESCRIPTION: Shape = Shape { min: 1, max: 4000, pattern: &ANY_AT_ALL };
/// `PermissionGroupId`: 1..26, not blank.
pub static PERMISSION_GROUP_ID: Shape = Shape { min: 1, max: 26, pattern: &NON_BLANK };
/// An access key id of this ledger: 16..128 capital letters and digits, as AWS key ids are.
pub static ACCESS_KEY_ID: Shape = Shape { min: 16, max: 128, pattern: &ACCESS_KEY_ID_PATTERN };
/// `PaginationToken` of finspace (kdb): 1..1000.
pub static KX_NEXT_TOKEN: Shape = Shape { min: 1, max: 1000, pattern: &ANY };

/// What no string member may hold: PostgreSQL's text and jsonb cannot store it, so a ledger
/// that took it on one engine could not be copied to the other.
pub const NUL: &str = "U+0000 (NUL)";

/// Checks `value` of member `field` against `shape`: length in characters, no [`NUL`], then
/// pattern.
pub fn check(field: &str, shape: &Shape, value: &str) -> Result<()> {
    let len = value.chars().count();
    if len < shape.min {
        return Err(Error::validation(field, Rule::MinLength(shape.min)));
    }
    if len > shape.max {
        return Err(Error::validation(field, Rule::MaxLength(shape.max)));
    }
    if value.contains('\0') {
        return Err(Error::validation(field, Rule::Contains(NUL)));
    }
    if !shape.pattern.regex.is_match(value) {
        return Err(Error::validation(field, Rule::Pattern(shape.pattern.source)));
    }
    Ok(())
}

/// The `tags` member: 1..50 entries, each key and value obeying its shape.
pub fn tags(field: &str, tags: &std::collections::BTreeMap<String, String>) -> Result<()> {
    if tags.is_empty() {
        return Err(Error::validation(field, Rule::MinLength(1)));
    }
    if tags.len() > 50 {
        return Err(Error::validation(field, Rule::MaxLength(50)));
    }
    let in_map = |wrap: fn(Box<Rule>) -> Rule| {
        move |e: Error| match e {
            Error::Validation { rule, .. } => Error::validation(field, wrap(Box::new(rule))),
            other => other,
        }
    };
    for (key, value) in tags {
        check(field, &TAG_KEY, key).map_err(in_map(Rule::MapKey))?;
        if key.starts_with(TAG_KEY_FORBIDDEN_PREFIX) {
            return Err(Error::validation(field, Rule::MapKey(Box::new(Rule::ForbiddenPrefix("aws:")))));
        }
        check(field, &TAG_VALUE, value).map_err(in_map(Rule::MapValue))?;
    }
    Ok(())
}

/// A required member: present, and obeying `shape`.
pub fn required<'a>(field: &str, shape: &Shape, value: Option<&'a str>) -> Result<&'a str> {
    let value = present(field, value)?;
    check(field, shape, value)?;
    Ok(value)
}

/// An optional member: absent, or obeying `shape`.
pub fn optional(field: &str, shape: &Shape, value: Option<&str>) -> Result<Option<String>> {
    value.map(|v| check(field, shape, v).map(|()| v.to_owned())).transpose()
}

/// What an email address may not contain once its ends are trimmed.
pub const EMAIL_FORBIDDEN: &str = "whitespace or invisible characters (its ends are trimmed first)";

/// `emailAddress`: trimmed of whitespace at both ends, then refused if it holds whitespace or an
/// invisible character anywhere (so that two spellings of one address cannot be two users), then
/// checked against [`EMAIL`]. Returns the trimmed address, which is what is stored.
pub fn email(field: &str, value: Option<&str>) -> Result<String> {
    let trimmed = present(field, value)?.trim();
    if trimmed.chars().any(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(Error::validation(field, Rule::Contains(EMAIL_FORBIDDEN)));
    }
    check(field, &EMAIL, trimmed)?;
    Ok(trimmed.to_owned())
}

/// Characters that show nothing: controls, and Unicode's format and filler characters
/// (zero-width spaces and joiners, bidirectional marks, the soft hyphen, the BOM, variation
/// selectors, tags, Hangul fillers).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// A required member of any type: present.
pub fn present<T>(field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::validation(field, Rule::Required))
}

/// An integer member within `min..=max`.
pub fn in_range(field: &str, min: i64, max: i64, value: i64) -> Result<i64> {
    if value < min {
        Err(Error::validation(field, Rule::MinValue(min)))
    } else if value > max {
        Err(Error::validation(field, Rule::MaxValue(max)))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(r: Result<()>) -> Option<Rule> {
        r.err().map(|e| match e {
            Error::Validation { rule, .. } => rule,
            other => panic!("not a validation error: {other:?}"),
        })
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        // 50 two-byte characters are 100 bytes but 50 characters: accepted.
        assert_eq!(rule_of(check("firstName", &NAME, &"é".repeat(50))), None);
        assert_eq!(rule_of(check("firstName", &NAME, &"é".repeat(51))), Some(Rule::MaxLength(50)));
    }

    #[test]
    fn unanchored_patterns_match_anywhere() {
        assert_eq!(rule_of(check("firstName", &NAME, " x ")), None);
        assert_eq!(rule_of(check("firstName", &NAME, "   ")), Some(Rule::Pattern(r".*\S.*")));
        assert_eq!(rule_of(check("emailAddress", &EMAIL, "see a@b.io now")), None);
        assert!(matches!(rule_of(check("emailAddress", &EMAIL, "a@b.c")), Some(Rule::Pattern(_))));
    }

    #[test]
    fn anchored_role_arn() {
        let ok = "arn:aws:iam::123456789012:role/Admin";
        assert_eq!(rule_of(check("iamRole", &ROLE_ARN, ok)), None);
        let trailing = format!("{ok} x");
        assert!(matches!(rule_of(check("iamRole", &ROLE_ARN, &trailing)), Some(Rule::Pattern(_))));
        let short_account = "arn:aws:iam::12345678901:role/Admin";
        assert!(matches!(rule_of(check("iamRole", &ROLE_ARN, short_account)), Some(Rule::Pattern(_))));
    }

    #[test]
    fn class_escapes_mean_what_they_mean_in_the_model() {
        assert_eq!(model_dialect(r"^\d{12}$"), r"^[[:digit:]]{12}$");
        assert_eq!(model_dialect(r".*\S.*"), r".*[[:^space:]].*");
        assert_eq!(model_dialect(r"[\s\S]*"), r"[[:space:][:^space:]]*");
        assert_eq!(
            model_dialect(r"[a-z\-_\d]\w\W\D\.\\"),
            r"[a-z\-_[:digit:]][[:word:]][[:^word:]][[:^digit:]]\.\\"
        );
        // Digits of other scripts are not the model's \d: Arabic-Indic, fullwidth, Devanagari.
        for digit in ['\u{0663}', '\u{FF13}', '\u{0969}'] {
            let role = format!("arn:aws:iam::12345678901{digit}:role/Admin");
            assert!(matches!(rule_of(check("iamRole", &ROLE_ARN, &role)), Some(Rule::Pattern(_))), "{role}");
            let account = format!("12345678901{digit}");
            assert!(
                matches!(rule_of(check("account", &ACCOUNT, &account)), Some(Rule::Pattern(_))),
                "{account}"
            );
        }
        // The model's \s is ASCII whitespace: a Unicode space is a non-space character there,
        // so a name of one is not blank; ASCII blanks are.
        for space in ['\u{00A0}', '\u{2003}', '\u{3000}'] {
            assert_eq!(
                rule_of(check("firstName", &NAME, &space.to_string())),
                None,
                "U+{:04X}",
                space as u32
            );
        }
        for blank in [" ", "\t", "\n", "\u{0B}", "\u{0C}", "\r", " \t\r\n "] {
            assert_eq!(
                rule_of(check("firstName", &NAME, blank)),
                Some(Rule::Pattern(r".*\S.*")),
                "{blank:?}"
            );
        }
    }

    #[test]
    fn no_member_holds_a_nul_whatever_its_pattern() {
        for shape in [
            &NAME,
            &USER_ID,
            &CLIENT_TOKEN,
            &KX_CLIENT_TOKEN,
            &GROUP_NAME,
            &GROUP_DESCRIPTION,
            &KX_NEXT_TOKEN,
        ] {
            assert_eq!(rule_of(check("m", shape, "a\0b")), Some(Rule::Contains(NUL)));
            assert_eq!(rule_of(check("m", shape, "ab")), None);
        }
    }

    #[test]
    fn ranges_and_presence() {
        assert_eq!(in_range("maxResults", 1, 100, 1), Ok(1));
        assert_eq!(in_range("maxResults", 1, 100, 100), Ok(100));
        assert_eq!(
            in_range("maxResults", 1, 100, 0),
            Err(Error::validation("maxResults", Rule::MinValue(1)))
        );
        assert_eq!(
            in_range("maxResults", 1, 100, 101),
            Err(Error::validation("maxResults", Rule::MaxValue(100)))
        );
        assert_eq!(present::<i64>("maxResults", None), Err(Error::validation("maxResults", Rule::Required)));
    }
}
