//! App ids as the original MAR made them, `mar-<datacenter>-<name>` (docs/runtime.md): one DNS label, so that
//! `<app-id>.<apps-domain>` is a host name, and nothing a path or a shell could read as more than a name.

/// The one datacenter this server is. `qtc-cli` reads the datacenter out of an instance id with
/// `^(mar|mdb)-\w+-\w+`, so it has the `<word>-<word>` form of the original `eu-1`.
pub const DATACENTER: &str = "local-1";

/// The longest app name: the id stays within a DNS label's 63 bytes.
const MAX_NAME: usize = 63 - "mar-local-1-".len();

/// Why a name cannot be an app's.
pub fn name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some("an app name has 1 to 51 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Some("an app name has lower-case letters, digits and hyphens only");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() || name.ends_with('-') {
        return Some("an app name starts with a letter and does not end with a hyphen");
    }
    None
}

/// The id of the app named `name`.
pub fn app_id(name: &str) -> String {
    format!("mar-{DATACENTER}-{name}")
}

/// The name in an app id, if it is one this server makes.
pub fn app_name(id: &str) -> Option<&str> {
    let name = id.strip_prefix("mar-")?.strip_prefix(DATACENTER)?.strip_prefix('-')?;
    name_error(name).is_none().then_some(name)
}

/// Whether `name` may be an environment variable's: a letter or underscore, then letters, digits, underscores.
pub fn env_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 255
}

/// Why `name` cannot be a custom domain of an app under `apps_domain`.
pub fn domain_error(name: &str, apps_domain: &str) -> Option<&'static str> {
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if name.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Some("a domain is lower-case labels of letters, digits and hyphens, separated by dots");
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Some("a domain is a name, not an address");
    }
    if name == apps_domain || name.ends_with(&format!(".{apps_domain}")) {
        return Some("names under the apps domain are the apps' own");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_safe_label() {
        assert_eq!(app_id("todo"), "mar-local-1-todo");
        assert_eq!(app_name("mar-local-1-todo"), Some("todo"));
        assert_eq!(app_name("mar-local-1-../x"), None);
        assert_eq!(app_name("mar-eu-1-todo"), None);
        for bad in ["", "Todo", "1st", "a_b", "a.b", "a/b", "ends-", "..", &"a".repeat(52)] {
            assert!(name_error(bad).is_some(), "{bad:?}");
        }
        assert!(name_error(&"a".repeat(51)).is_none());
        assert!(app_id(&"a".repeat(51)).len() <= 63);
        assert!(env_name_ok("DATABASE_URL") && env_name_ok("_x1"));
        assert_eq!(domain_error("www.example.com", "apps.test"), None);
        for bad in ["example", "Example.com", "a..b", "-a.com", "1.2.3.4", "x.apps.test", "apps.test", "a_b.com"] {
            assert!(domain_error(bad, "apps.test").is_some(), "{bad}");
        }
        assert!(!env_name_ok("1X") && !env_name_ok("A-B") && !env_name_ok("") && !env_name_ok("A=B"));
    }
}
