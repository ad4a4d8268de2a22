//! Every rule of every request member: the edge accepted, one past it rejected with a
//! ValidationException naming the member and the rule, and nothing written.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::common;

use common::{validation, TestLedger, SYSTEM};
use user_ledger::{
    CreateKxUserRequest, CreateUserRequest, Error, Rule, UpdateKxUserRequest, UpdateUserRequest,
};

const EMAIL_PATTERN: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,4}";
const EMAIL_FORBIDDEN: &str = "whitespace or invisible characters (its ends are trimmed first)";
const NON_BLANK: &str = r".*\S.*";
const ROLE_ARN_PATTERN: &str = r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$";
const ROLE_PREFIX: &str = "arn:aws:iam::123456789012:role/";

/// A case: the member's value (None = absent) and the rule it breaks (None = accepted).
type Case = (Option<String>, Option<Rule>);

fn ok(v: impl Into<String>) -> Case {
    (Some(v.into()), None)
}

fn bad(v: impl Into<String>, rule: Rule) -> Case {
    (Some(v.into()), Some(rule))
}

fn x(n: usize) -> String {
    "x".repeat(n)
}

/// firstName, lastName: 1..50, not blank.
fn name_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok("x"),
        ok(x(50)),
        bad(x(51), Rule::MaxLength(50)),
        bad("   ", Rule::Pattern(NON_BLANK)),
        bad(" \t\r\n\u{0B}\u{0C}", Rule::Pattern(NON_BLANK)),
        ok(" a "),
        // The model's \s is Java's, ASCII only: a Unicode space is not blank there.
        ok("\u{00A0}"),
        ok("\u{3000}"),
    ]
}

/// clientToken of finspace-data: 1..128, not blank.
fn token_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok("t"),
        ok(x(128)),
        bad(x(129), Rule::MaxLength(128)),
        bad("\t ", Rule::Pattern(NON_BLANK)),
    ]
}

/// userId: 1..26, not blank (a valid id that names no user is ResourceNotFound, checked apart).
fn user_id_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok("u"),
        ok(x(26)),
        bad(x(27), Rule::MaxLength(26)),
        bad("  ", Rule::Pattern(NON_BLANK)),
    ]
}

fn api_access_cases() -> Vec<Case> {
    let values = &["ENABLED", "DISABLED"][..];
    vec![ok("ENABLED"), ok("DISABLED"), bad("enabled", Rule::Enum(values)), bad("", Rule::Enum(values))]
}

/// apiAccessPrincipalArn: 20..2048, an IAM role ARN.
fn role_arn_cases() -> Vec<Case> {
    vec![
        bad(x(19), Rule::MinLength(20)),
        bad(x(20), Rule::Pattern(ROLE_ARN_PATTERN)), // the length rule accepts 20
        ok(format!("{ROLE_PREFIX}r")),
        ok("arn:aws-cn:iam::123456789012:role/path/to/R+=,.@-_"),
        ok(format!("{ROLE_PREFIX}{}", x(2048 - ROLE_PREFIX.len()))),
        bad(format!("{ROLE_PREFIX}{}", x(2049 - ROLE_PREFIX.len())), Rule::MaxLength(2048)),
        bad("arn:aws:iam::123456789012:user/alice", Rule::Pattern(ROLE_ARN_PATTERN)),
        bad(format!("{ROLE_PREFIX}r "), Rule::Pattern(ROLE_ARN_PATTERN)),
        // The model's \d is [0-9]: Arabic-Indic, fullwidth and Devanagari digits are not digits.
        bad("arn:aws:iam::12345678901\u{0663}:role/r", Rule::Pattern(ROLE_ARN_PATTERN)),
        bad("arn:aws:iam::12345678901\u{FF13}:role/r", Rule::Pattern(ROLE_ARN_PATTERN)),
        bad("arn:aws:iam::12345678901\u{0969}:role/r", Rule::Pattern(ROLE_ARN_PATTERN)),
    ]
}

/// Runs every case of `member` through `op` on a fresh ledger and checks the outcome.
///
/// `op` gets the value and the case number (to keep emails unique). An accepted value may still
/// fail for a reason that is not validation (e.g. ResourceNotFound); a rejected one must fail
/// naming `member` and the rule, and append nothing.
fn check<T: std::fmt::Debug>(
    member: &str,
    cases: Vec<Case>,
    op: impl Fn(&TestLedger, Option<String>, usize) -> Result<T, Error>,
) {
    check_on(member, cases, |_, _| String::new(), |t, v, i, _| op(t, v, i));
}

/// As [`check`], on a target `setup` makes for each case (before the event count is taken).
fn check_on<T: std::fmt::Debug>(
    member: &str,
    cases: Vec<Case>,
    setup: impl Fn(&TestLedger, usize) -> String,
    op: impl Fn(&TestLedger, Option<String>, usize, String) -> Result<T, Error>,
) {
    let t = TestLedger::new();
    for (i, (value, rule)) in cases.into_iter().enumerate() {
        let target = setup(&t, i);
        let events = t.events();
        let shown = value.as_ref().map(|v| v.chars().take(40).collect::<String>());
        let result = op(&t, value, i, target);
        match rule {
            None => {
                assert_eq!(validation(&result), None, "{member}={shown:?} should be accepted: {result:?}")
            }
            Some(rule) => {
                assert_eq!(validation(&result), Some((member.to_string(), rule)), "{member}={shown:?}");
                assert_eq!(t.events(), events, "a rejected request wrote nothing");
            }
        }
    }
}

fn email(i: usize) -> String {
    format!("user{i}@example.com")
}

fn create(t: &TestLedger, request: CreateUserRequest) -> Result<String, Error> {
    t.ledger.create_user(&SYSTEM, &request).map(|r| r.user_id)
}

#[test]
fn create_user_email_address() {
    let local_320 = x(320 - "@example.com".len());
    let cases = vec![
        (None, Some(Rule::Required)),
        bad("a@b", Rule::MinLength(4)),
        bad("a@bc", Rule::Pattern(EMAIL_PATTERN)), // the length rule accepts 4
        ok("a@b.io"),
        ok(format!("{local_320}@example.com")),
        bad(format!("{local_320}x@example.com"), Rule::MaxLength(320)),
        bad("not-an-email", Rule::Pattern(EMAIL_PATTERN)),
        bad("a@b.c", Rule::Pattern(EMAIL_PATTERN)),
        ok("<first.last+tag%x@sub-1.example.org>"), // unanchored, as the model
        // A display name before a space would make a second user of one address.
        bad("Name <first.last+tag%x@sub-1.example.org>", Rule::Contains(EMAIL_FORBIDDEN)),
        ok("  a@b.io\n"), // its ends are trimmed
        bad("a@b.io\u{200B}", Rule::Contains(EMAIL_FORBIDDEN)),
    ];
    check("emailAddress", cases, |t, v, _| {
        create(t, CreateUserRequest { email_address: v, ..CreateUserRequest::new("", "APP_USER") })
    });
}

#[test]
fn create_user_type() {
    let values = &["SUPER_USER", "APP_USER"][..];
    let cases = vec![
        (None, Some(Rule::Required)),
        ok("SUPER_USER"),
        ok("APP_USER"),
        bad("app_user", Rule::Enum(values)),
        bad("ADMIN", Rule::Enum(values)),
    ];
    check("type", cases, |t, v, i| {
        create(t, CreateUserRequest { user_type: v, ..CreateUserRequest::new(email(i), "") })
    });
}

#[test]
fn create_user_first_and_last_name() {
    check("firstName", name_cases(), |t, v, i| {
        create(t, CreateUserRequest { first_name: v, ..CreateUserRequest::new(email(i), "APP_USER") })
    });
    check("lastName", name_cases(), |t, v, i| {
        create(t, CreateUserRequest { last_name: v, ..CreateUserRequest::new(email(i), "APP_USER") })
    });
}

#[test]
fn create_user_api_access_and_principal() {
    check("apiAccess", api_access_cases(), |t, v, i| {
        create(t, CreateUserRequest { api_access: v, ..CreateUserRequest::new(email(i), "APP_USER") })
    });
    check("apiAccessPrincipalArn", role_arn_cases(), |t, v, i| {
        create(
            t,
            CreateUserRequest { api_access_principal_arn: v, ..CreateUserRequest::new(email(i), "APP_USER") },
        )
    });
}

#[test]
fn create_user_client_token() {
    check("clientToken", token_cases(), |t, v, i| {
        create(t, CreateUserRequest { client_token: v, ..CreateUserRequest::new(email(i), "APP_USER") })
    });
}

#[test]
fn update_user_members() {
    let update = |t: &TestLedger, r: UpdateUserRequest| t.ledger.update_user(&SYSTEM, &r);
    let mut id_cases = user_id_cases();
    id_cases.insert(0, (None, Some(Rule::Required)));
    check("userId", id_cases, |t, v, _| update(t, UpdateUserRequest { user_id: v, ..Default::default() }));

    // Each case updates its own user, made before the event count is taken.
    let existing = |t: &TestLedger, i: usize| t.create(&email(i));
    let on = |id: String| UpdateUserRequest::new(id);
    let values = &["SUPER_USER", "APP_USER"][..];
    let type_cases = vec![ok("SUPER_USER"), ok("APP_USER"), bad("super_user", Rule::Enum(values))];
    check_on("type", type_cases, existing, |t, v, _, id| {
        update(t, UpdateUserRequest { user_type: v, ..on(id) })
    });
    check_on("firstName", name_cases(), existing, |t, v, _, id| {
        update(t, UpdateUserRequest { first_name: v, ..on(id) })
    });
    check_on("lastName", name_cases(), existing, |t, v, _, id| {
        update(t, UpdateUserRequest { last_name: v, ..on(id) })
    });
    check_on("apiAccess", api_access_cases(), existing, |t, v, _, id| {
        update(t, UpdateUserRequest { api_access: v, ..on(id) })
    });
    check_on("apiAccessPrincipalArn", role_arn_cases(), existing, |t, v, _, id| {
        update(t, UpdateUserRequest { api_access_principal_arn: v, ..on(id) })
    });
    check_on("clientToken", token_cases(), existing, |t, v, _, id| {
        update(t, UpdateUserRequest { client_token: v, ..on(id) })
    });
}

#[test]
fn get_enable_disable_user_id_and_token() {
    let id = |v: Option<String>| v.unwrap_or_default();
    check("userId", user_id_cases(), |t, v, _| t.ledger.get_user(&SYSTEM, &id(v)));
    check("userId", user_id_cases(), |t, v, _| t.ledger.enable_user(&SYSTEM, &id(v), None));
    check("userId", user_id_cases(), |t, v, _| t.ledger.disable_user(&SYSTEM, &id(v), None));
    let existing = |t: &TestLedger, i: usize| t.create(&email(i));
    check_on("clientToken", token_cases(), existing, |t, v, _, id| {
        t.ledger.enable_user(&SYSTEM, &id, v.as_deref())
    });
    check_on("clientToken", token_cases(), existing, |t, v, _, id| {
        t.ledger.disable_user(&SYSTEM, &id, v.as_deref())
    });
}

#[test]
fn list_users_max_results() {
    let t = TestLedger::new();
    let list = |n: Option<i64>| t.ledger.list_users(&SYSTEM, n, None);
    let field = |rule| Some(("maxResults".to_string(), rule));
    assert_eq!(validation(&list(None)), field(Rule::Required));
    assert_eq!(validation(&list(Some(0))), field(Rule::MinValue(1)));
    assert_eq!(validation(&list(Some(-7))), field(Rule::MinValue(1)));
    assert_eq!(validation(&list(Some(101))), field(Rule::MaxValue(100)));
    assert!(list(Some(1)).is_ok());
    assert!(list(Some(100)).is_ok());
}

#[test]
fn the_message_names_the_member_and_the_rule() {
    let t = TestLedger::new();
    let err = t.ledger.create_user(&SYSTEM, &CreateUserRequest::new("a@example.com", "ROOT")).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.wire_name(), "ValidationException");
    assert_eq!(
        err.to_string(),
        "1 validation error detected: Value at 'type' failed to satisfy constraint: \
         Member must satisfy enum value set: [SUPER_USER, APP_USER]"
    );
}

// --- The kdb user operations (service `finspace`).

const ENV_PATTERN: &str = r"^[a-zA-Z0-9]{1,26}$";
const KX_NAME_PATTERN: &str = r"^[0-9A-Za-z_-]{1,50}$";
const ROLE: &str = "arn:aws:iam::123456789012:role/R";

fn environment_id_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok("e"),
        ok("aZ9".repeat(8) + "xy"),
        bad(x(27), Rule::MaxLength(26)),
        bad("env-1", Rule::Pattern(ENV_PATTERN)),
        bad("env 1", Rule::Pattern(ENV_PATTERN)),
    ]
}

fn kx_user_name_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok("a"),
        ok("a_-9".repeat(12) + "Zz"),
        bad(x(51), Rule::MaxLength(50)),
        bad("a b", Rule::Pattern(KX_NAME_PATTERN)),
        bad("bob!", Rule::Pattern(KX_NAME_PATTERN)),
    ]
}

fn kx_token_cases() -> Vec<Case> {
    vec![
        bad("", Rule::MinLength(1)),
        ok(x(36)),
        bad(x(37), Rule::MaxLength(36)),
        bad(" ", Rule::Pattern(NON_BLANK)),
    ]
}

fn required(mut cases: Vec<Case>) -> Vec<Case> {
    cases.insert(0, (None, Some(Rule::Required)));
    cases
}

fn name(i: usize) -> String {
    format!("user{i}")
}

#[test]
fn create_kx_user_members() {
    let create = |t: &TestLedger, r: CreateKxUserRequest| t.ledger.create_kx_user(&SYSTEM, &r);
    check("environmentId", required(environment_id_cases()), |t, v, i| {
        create(t, CreateKxUserRequest { environment_id: v, ..CreateKxUserRequest::new("", name(i), ROLE) })
    });
    check("userName", required(kx_user_name_cases()), |t, v, _| {
        create(t, CreateKxUserRequest { user_name: v, ..CreateKxUserRequest::new("env1", "", ROLE) })
    });
    check("iamRole", required(role_arn_cases()), |t, v, i| {
        create(t, CreateKxUserRequest { iam_role: v, ..CreateKxUserRequest::new("env1", name(i), "") })
    });
    check("clientToken", kx_token_cases(), |t, v, i| {
        create(t, CreateKxUserRequest { client_token: v, ..CreateKxUserRequest::new("env1", name(i), ROLE) })
    });
}

#[test]
fn create_kx_user_tags() {
    let key_rule = |r| Some(Rule::MapKey(Box::new(r)));
    let value_rule = |r| Some(Rule::MapValue(Box::new(r)));
    let tags = |pairs: &[(String, String)]| pairs.iter().cloned().collect();
    let one = |k: &str, v: &str| tags(&[(k.to_string(), v.to_string())]);
    let many = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let cases: Vec<(std::collections::BTreeMap<String, String>, Option<Rule>)> = vec![
        (tags(&[]), Some(Rule::MinLength(1))),
        (many(50), None),
        (many(51), Some(Rule::MaxLength(50))),
        (one(&"k".repeat(128), "v"), None),
        (one(&"k".repeat(129), "v"), key_rule(Rule::MaxLength(128))),
        (one("", "v"), key_rule(Rule::MinLength(1))),
        (one("aws:team", "v"), key_rule(Rule::ForbiddenPrefix("aws:"))),
        (one("awsx:team", "v"), None),
        (one("team/desk.1:x_y", "v"), None),
        (one("bad key", "v"), key_rule(Rule::Pattern(r"^[a-zA-Z+-=._:/]+$"))),
        (one("k", &"v".repeat(256)), None),
        (one("k", &"v".repeat(257)), value_rule(Rule::MaxLength(256))),
        (one("k", ""), value_rule(Rule::MinLength(1))),
        (one("k", "quant desk@x:1"), None),
        (one("k", "a#b"), value_rule(Rule::Pattern(r"^[a-zA-Z0-9+-=._:@ ]+$"))),
    ];
    let t = TestLedger::new();
    for (i, (tags, rule)) in cases.into_iter().enumerate() {
        let request =
            CreateKxUserRequest { tags: Some(tags), ..CreateKxUserRequest::new("env1", name(i), ROLE) };
        let result = t.ledger.create_kx_user(&SYSTEM, &request);
        assert_eq!(validation(&result), rule.map(|r| ("tags".to_string(), r)), "case {i}");
    }
    assert_eq!(t.events(), 6, "only the accepted cases wrote");
}

#[test]
fn update_kx_user_members() {
    // Each case updates its own user, made before the event count is taken.
    let existing = |t: &TestLedger, i: usize| {
        t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", name(i), ROLE)).unwrap().user_name
    };
    let update = |t: &TestLedger, r: UpdateKxUserRequest| t.ledger.update_kx_user(&SYSTEM, &r);
    check("environmentId", required(environment_id_cases()), |t, v, i| {
        update(t, UpdateKxUserRequest { environment_id: v, ..UpdateKxUserRequest::new("", name(i), ROLE) })
    });
    check("userName", required(kx_user_name_cases()), |t, v, _| {
        update(t, UpdateKxUserRequest { user_name: v, ..UpdateKxUserRequest::new("env1", "", ROLE) })
    });
    check_on("iamRole", required(role_arn_cases()), existing, |t, v, _, n| {
        update(t, UpdateKxUserRequest { iam_role: v, ..UpdateKxUserRequest::new("env1", n, "") })
    });
    check_on("clientToken", kx_token_cases(), existing, |t, v, _, n| {
        update(t, UpdateKxUserRequest { client_token: v, ..UpdateKxUserRequest::new("env1", n, ROLE) })
    });
}

#[test]
fn get_delete_list_kx_user_members() {
    let s = |v: Option<String>| v.unwrap_or_default();
    check("environmentId", environment_id_cases(), |t, v, _| t.ledger.get_kx_user(&SYSTEM, &s(v), "bob"));
    check("userName", kx_user_name_cases(), |t, v, _| t.ledger.get_kx_user(&SYSTEM, "env1", &s(v)));
    check("environmentId", environment_id_cases(), |t, v, _| {
        t.ledger.delete_kx_user(&SYSTEM, &s(v), "bob", None)
    });
    check("userName", kx_user_name_cases(), |t, v, _| t.ledger.delete_kx_user(&SYSTEM, "env1", &s(v), None));
    let existing = |t: &TestLedger, i: usize| {
        t.ledger.create_kx_user(&SYSTEM, &CreateKxUserRequest::new("env1", name(i), ROLE)).unwrap().user_name
    };
    check_on("clientToken", kx_token_cases(), existing, |t, v, _, n| {
        t.ledger.delete_kx_user(&SYSTEM, "env1", &n, v.as_deref())
    });
    check("environmentId", environment_id_cases(), |t, v, _| {
        t.ledger.list_kx_users(&SYSTEM, &s(v), None, None)
    });
}

#[test]
fn list_kx_users_max_results_and_next_token() {
    let t = TestLedger::new();
    let list = |n: Option<i64>, token: Option<&str>| t.ledger.list_kx_users(&SYSTEM, "env1", n, token);
    let field = |f: &str, rule| Some((f.to_string(), rule));
    assert_eq!(validation(&list(Some(-1), None)), field("maxResults", Rule::MinValue(0)));
    assert_eq!(validation(&list(Some(101), None)), field("maxResults", Rule::MaxValue(100)));
    for n in [None, Some(0), Some(1), Some(100)] {
        assert!(list(n, None).is_ok(), "{n:?}");
    }
    assert_eq!(validation(&list(None, Some(""))), field("nextToken", Rule::MinLength(1)));
    assert_eq!(validation(&list(None, Some(&x(1001)))), field("nextToken", Rule::MaxLength(1000)));
    assert_eq!(validation(&list(None, Some(&x(1000)))), field("nextToken", Rule::InvalidToken));
    assert_eq!(validation(&list(None, Some("garbled!"))), field("nextToken", Rule::InvalidToken));
}
