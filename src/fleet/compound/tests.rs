use super::*;

fn err(src: &str) -> SyntaxError {
    match parse(src) {
        Ok(e) => panic!("{src:?} parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn accepts_what_choria_users_write() {
    for ok in [
        "with('apache')",
        "with('apache') && fact('country') == 'mt'",
        "with('apache') and not with('nginx')",
        "fact('cpus') >= 4 && (fact('os.family') == 'RedHat' || fact('os.family') == 'Debian')",
        "identity =~ '^n001'",
        "identity matches '^n00[12]' && !(identity not matches 'x')",
        "'apache' in classes || 'nginx' not in classes",
        "include(fact('networking.interfaces'), 'eth0')",
        "semver(fact('version'), '>= 1.2.0')",
        "fact('a') ?? 'b' == 'b' ? true : false",
        "len(classes) > 2 and classes[0] startsWith 'profile'",
        "facts.os?.family == \"Debian\"",
        "fact(`raw\\string`) contains 'x'",
        "1_000 + 0x1F * 2 ** 3 - 1.5e3 % 7 > -2",
        "[1, 2, 3,] | filter(# > 1) | len() == 2",
        "{a: 1, 'b': [2]}.a == 1",
        "let x = fact('cpus'); x > 2",
        "if with('a') { true } else if with('b') { true } else { false }",
        "fact('x')[1:2] == nil // a comment",
        "/* multi\nline */ with('a')",
        "with('a')\u{00A0}&&\u{00A0}with('b')",
        "fact('café') == 'ü' && naïve == nil",
    ] {
        if let Err(e) = parse(ok) {
            panic!("{ok:?}: {}", e.render(ok));
        }
    }
}

#[test]
fn rejects_what_is_certainly_not_expr_with_the_column() {
    let cases = [
        ("with('apache') &&& fact('x')", 18, "'&&'"),
        ("with('apache'", 5, "never closed"),
        ("(with('a') || with('b')", 1, "never closed"),
        ("with('a'))", 10, "unbalanced"),
        ("with('a) && with('b')", 20, "unterminated string"),
        ("with('a') &&", 13, "end of expression after '&&'"),
        ("with('a') or", 13, "end of expression after 'or'"),
        ("€", 1, "U+20AC"),
        ("with(\u{2018}apache\u{2019})", 6, "typographic quote"),
        ("fact('cpus') > \u{2212}1", 16, "typographic dash"),
        ("fact('x') = 'y'", 11, "'=='"),
        ("", 1, "empty"),
        ("with('a') with('b')", 11, "after a complete expression"),
        ("12abc", 1, "bad number"),
    ];
    for (src, column, text) in cases {
        let e = err(src);
        assert_eq!(e.column, column, "{src:?}: {e}");
        assert!(e.message.contains(text), "{src:?}: {e}");
    }
}

#[test]
fn nesting_is_bounded_not_a_stack_overflow() {
    let bangs = format!("{}true", "!".repeat(10_000));
    assert!(err(&bangs).message.contains("nested deeper than 64"));
    let parens = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&parens).message.contains("nested deeper than 64"));
    let brackets = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(err(&brackets).message.contains("nested deeper"));
    assert!(parse(&format!("{}true", "!".repeat(MAX_DEPTH - 2))).is_ok());
    // A long flat list is not deep.
    let long = vec!["with('a')"; 50_000].join(" || ");
    assert!(matches!(parse(&long), Ok(Expr::Binary { rest, .. }) if rest.len() == 49_999));
}

#[test]
fn the_caret_points_at_the_column() {
    let src = "with('a') &&& x";
    assert_eq!(err(src).render(src), "syntax error at column 13: unexpected character '&' (U+0026) (did you mean '&&'?)\n    with('a') &&& x\n                ^");
}

#[test]
fn literal_matches_patterns_must_compile() {
    let bad = |src: &str| bad_literal_regex(&parse(src).unwrap()).map(|(p, _)| p);
    assert_eq!(bad("identity matches '('"), Some("(".to_string()));
    assert_eq!(bad("with('a') && (fact('x') == 'y' || identity matches 'web[0-9')"), Some("web[0-9".to_string()));
    assert_eq!(bad("!(identity =~ '[')"), Some("[".to_string()));
    assert_eq!(bad("identity matches '^web[0-9]+$' && with('a')"), None);
}
