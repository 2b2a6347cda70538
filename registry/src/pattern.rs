//! Name patterns of the policy file (repositories, tags): `*` matches any
//! run of characters, `/` included; everything else is literal. So
//! `team/*` is every repository under `team/`, `v*` every tag starting
//! with `v`, and `*` (or `**`) everything.

pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The pattern as an SQL `LIKE` operand with `\` as the escape character.
pub fn to_sql_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("**", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("a/*/c", "a/b/x/c"));
        assert!(!matches("a/*/c", "a/c"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("v*", "v1.2"));
        assert!(!matches("v*", "latest"));
    }

    #[test]
    fn like() {
        assert_eq!(to_sql_like("team_a/*"), "team\\_a/%");
        assert_eq!(to_sql_like("a%b"), "a\\%b");
    }
}
