//! Tests of `updraft serve`'s settings: each layer over the next (flag, env var, file, default), refusals with a
//! reason, help made from the declarations, and README.md's table of settings checked against them.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn parse(args: &[&str]) -> anyhow::Result<Settings> {
    let cli =
        Cli::try_parse_from(std::iter::once("updraft").chain(std::iter::once("serve")).chain(args.iter().copied()))?;
    let Command::Serve(args) = cli.command else { panic!("not serve") };
    (*args).resolve()
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let dir = std::env::temp_dir().join(format!("updraft-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("updraft.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\naccess_control = \"custom\"\nping_interval_secs = 10\n")
        .unwrap();
    let s = parse(&["--config", file.to_str().unwrap(), "--listen", "127.0.0.1:7000"]).unwrap();
    assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(s.default_gateway.access, AccessControl::Custom);
    assert_eq!(s.ping_interval, Duration::from_secs(10));
    assert_eq!(s.max_body_bytes, 1 << 20);
    std::fs::write(&file, "no_such_setting = 1\n").unwrap();
    assert!(parse(&["--config", file.to_str().unwrap()]).is_err());
}

#[test]
fn the_halves_of_a_pair_may_come_from_the_file_and_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("updraft.toml");
    std::fs::write(&file, "admin_password = \"from the file\"\ntls_key = \"/etc/updraft/key.pem\"\n").unwrap();
    let config = file.to_str().unwrap();
    let s = parse(&["--config", config, "--admin-email", "a@example.com", "--tls-cert", "/etc/cert.pem"]).unwrap();
    assert_eq!(s.account.as_ref().map(|(email, _)| email.as_str()), Some("a@example.com"));
    assert_eq!(s.tls.as_ref().map(|files| files.key.as_path()), Some(Path::new("/etc/updraft/key.pem")));
    // A half with no other half anywhere is still refused, with the reason.
    let err = parse(&["--tls-cert", "/etc/cert.pem"]).unwrap_err().to_string();
    assert!(err.contains("--tls-cert and --tls-key go together"), "{err}");
    let err = parse(&["--admin-email", "a@example.com"]).unwrap_err().to_string();
    assert!(err.contains("go together"), "{err}");
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    let err = parse(&["--access-control", "open"]).unwrap_err().to_string();
    assert!(err.contains("none, eds or custom"), "{err}");
    assert!(parse(&["--eds-permissions", "{not json"]).is_err());
    assert!(parse(&["--eds-permissions", r#"{"read":"*"}"#]).is_err());
    let s = parse(&["--eds-permissions", r#"{"read":["*"],"write":["usergroups.12345"]}"#]).unwrap();
    assert_eq!(s.default_gateway.eds_permissions.write, ["usergroups.12345"]);
    assert!(parse(&["--ping-interval-secs", "0"]).is_err());
    let err = parse(&["--api-nice", "20"]).unwrap_err().to_string();
    assert!(err.contains("0 to 19"), "{err}");
    assert!(parse(&["--api-nice", "-1"]).is_err());
    assert_eq!(parse(&[]).unwrap().api_nice, default_api_nice());
    assert_eq!(parse(&["--frames-nice", "-5"]).unwrap().frames_nice, -5, "a negative number is a value, not a flag");
    let err = parse(&["--frames-nice", "1"]).unwrap_err().to_string();
    assert!(err.contains("-20 to 0"), "{err}");
    assert!(parse(&["--frames-nice", "-21"]).is_err());
    assert_eq!(parse(&[]).unwrap().frames_nice, default_frames_nice());
    let err = parse(&["--api-slice-us", "50"]).unwrap_err().to_string();
    assert!(err.contains("100 to 100000"), "{err}");
    assert_eq!(parse(&["--api-slice-us", "100"]).unwrap().api_slice, Some(Duration::from_micros(100)));
    assert_eq!(parse(&[]).unwrap().api_slice, None);
}

#[test]
fn enums_read_as_before_from_flags_and_the_file() {
    let err = parse(&["--log-format", "yaml"]).unwrap_err().to_string();
    assert!(err.contains("text or json"), "{err}");
    // As the original read ACCESS_CONTROL: blanks around it ignored, empty is none.
    assert_eq!(parse(&["--access-control", " eds "]).unwrap().default_gateway.access, AccessControl::Eds);
    assert_eq!(parse(&["--access-control", ""]).unwrap().default_gateway.access, AccessControl::None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("updraft.toml");
    std::fs::write(&file, "access_control = \"\"\nlog_format = \"json\"\n").unwrap();
    let s = parse(&["--config", file.to_str().unwrap()]).unwrap();
    assert_eq!(s.default_gateway.access, AccessControl::None);
    assert!(s.json_logs);
    std::fs::write(&file, "access_control = \"open\"\n").unwrap();
    let err = format!("{:#}", parse(&["--config", file.to_str().unwrap()]).unwrap_err());
    assert!(err.contains("none, eds or custom"), "{err}");
}

/// What the file in the precedence tests says: a value for every setting they look at.
const FILE_SETTINGS: &str = r#"
listen = "127.0.0.1:9001"
data_dir = "/from/the/file"
access_control = "eds"
webhooks_allow_unsafe_targets = false
api_nice = 7
app_domain = "file.example"
ping_interval_secs = 11
"#;

#[test]
fn flags_beat_the_file_and_the_file_beats_defaults_for_every_kind_of_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("updraft.toml");
    std::fs::write(&file, FILE_SETTINGS).unwrap();
    let config = file.to_str().unwrap();

    let s = parse(&["--config", config, "--listen", "127.0.0.1:7000", "--access-control", "custom"]).unwrap();
    assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap(), "a flag over the file");
    assert_eq!(s.default_gateway.access, AccessControl::Custom, "a flag over the file");
    assert_eq!(s.data_dir, Path::new("/from/the/file"), "the file over the default");
    assert_eq!(s.api_nice, 7, "the file over a computed default");
    assert_eq!(s.app_domain.as_deref(), Some("file.example"), "the file over unset");
    assert!(!s.webhooks.allow_unsafe_targets);
    assert_eq!(s.ping_interval, Duration::from_secs(11));

    let s = parse(&["--config", config, "--webhooks-allow-unsafe-targets", "true", "--api-nice", "0"]).unwrap();
    assert!(s.webhooks.allow_unsafe_targets, "a flag over the file");
    assert_eq!(s.api_nice, 0, "a flag over the file, though it is the default of some machines");

    let s = parse(&[]).unwrap();
    assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.data_dir, Path::new("./updraft-data"));
    assert_eq!(s.default_gateway.access, AccessControl::None);
    assert_eq!(s.api_nice, default_api_nice());
    assert_eq!(s.app_domain, None);
    assert!(!s.webhooks.allow_unsafe_targets);
    assert_eq!(s.ping_interval, Duration::from_secs(45));
}

/// Set in the copy of this test binary that `env_vars_beat_the_file_and_flags_beat_env_vars` starts.
const IN_CHILD: &str = "UPDRAFT_CONFIG_TEST_CHILD";

#[test]
fn env_vars_beat_the_file_and_flags_beat_env_vars() {
    // clap reads env vars as it builds the command, and a test must not change the environment of a process whose
    // other tests read it, so this test runs again in a child process that has the variables.
    if std::env::var_os(IN_CHILD).is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("updraft.toml");
        std::fs::write(&file, FILE_SETTINGS).unwrap();
        let module = module_path!().split_once("::").expect("a crate's module").1;
        let test = format!("{module}::env_vars_beat_the_file_and_flags_beat_env_vars");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test.as_str(), "--exact", "--test-threads=1"])
            .env(IN_CHILD, "1")
            .env("UPDRAFT_CONFIG", &file)
            .env("UPDRAFT_LISTEN", "127.0.0.1:7100")
            .env("UPDRAFT_API_NICE", "5")
            .env("UPDRAFT_DATA_DIR", "/from/env")
            .env("ACCESS_CONTROL", "custom")
            .env("UPDRAFT_WEBHOOKS_ALLOW_UNSAFE_TARGETS", "true")
            .env("APP_DOMAIN", "env.example")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child test:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let s = parse(&["--listen", "127.0.0.1:7000", "--api-nice", "3"]).unwrap();
    assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap(), "a flag over env and the file");
    assert_eq!(s.api_nice, 3, "a flag over env and the file");
    assert_eq!(s.data_dir, Path::new("/from/env"), "env over the file");
    assert_eq!(s.default_gateway.access, AccessControl::Custom, "env over the file");
    assert!(s.webhooks.allow_unsafe_targets, "env over the file");
    assert_eq!(s.app_domain.as_deref(), Some("env.example"), "env over the file");
    assert_eq!(s.ping_interval, Duration::from_secs(11), "the file (named by env) over the default");
    assert_eq!(s.max_body_bytes, 1 << 20, "the default");
}

#[test]
fn help_ends_in_the_declared_default() {
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    let help = |id: &str| {
        let arg = command.get_arguments().find(|a| a.get_id() == id).expect("a setting");
        arg.get_help().expect("every setting has help").to_string()
    };
    assert_eq!(help("listen"), "Address to listen on [default: 127.0.0.1:8080]");
    assert_eq!(help("tls_cert"), "PEM certificate chain: serve HTTPS and WSS");
    assert_eq!(help("app_domain"), "Host (and port) put in socket URIs [default: the listen address]");
    for (field, shown) in DEFAULTS_SHOWN {
        let help = help(field);
        match shown {
            Some(default) => assert!(help.ends_with(&format!(" [default: {default}]")), "{field}: {help}"),
            None => assert!(!help.contains("[default:"), "{field}: {help}"),
        }
    }
    let api_nice = help("api_nice");
    assert!(api_nice.ends_with("0 is the same priority [default: 10 when the server may use one CPU, else 0]"));
    assert!(api_nice.contains("own, so that a burst"), "lines are joined by one space: {api_nice}");
}

#[test]
fn defaults_agree_with_the_crates_that_own_them() {
    let limits = parse(&[]).unwrap().login_limits;
    let theirs = updraft_api::passwords::AttemptLimits::default();
    assert_eq!(limits.per_address_per_minute, theirs.per_address_per_minute);
    assert_eq!(limits.failures_per_account_per_minute, theirs.failures_per_account_per_minute);
}

/// The README's table of settings: flag, env var and default of each row (backticks around a cell dropped).
fn readme_rows(readme: &str) -> Vec<[String; 3]> {
    let table = readme
        .split("\n### Settings\n")
        .nth(1)
        .expect("README.md has a Settings section")
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim().trim_start_matches('|').trim_end_matches('|');
        line.split('|')
            .map(|cell| {
                let cell = cell.trim();
                cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')).unwrap_or(cell).to_owned()
            })
            .collect()
    };
    let mut lines = table.map(cells);
    let header = lines.next().expect("a table of settings");
    assert_eq!(header[..3], ["Flag", "Env", "Default"], "the columns the README test reads");
    lines.skip(1).map(|row| [row[0].clone(), row[1].clone(), row[2].clone()]).collect()
}

#[test]
fn the_readme_lists_every_setting_as_declared() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let shown: BTreeMap<&str, Option<&str>> = DEFAULTS_SHOWN.iter().copied().collect();
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    let declared: BTreeMap<String, [String; 3]> = command
        .get_arguments()
        .map(|arg| {
            let flag = format!("--{}", arg.get_long().expect("a setting is a long flag"));
            let env = arg.get_env().expect("a setting has an env var").to_string_lossy().into_owned();
            let default = shown[arg.get_id().as_str()].unwrap_or_default().to_owned();
            (flag.clone(), [flag, env, default])
        })
        .collect();
    let mut documented = BTreeMap::new();
    let mut problems = Vec::new();
    for row in readme_rows(&readme) {
        if let Some(earlier) = documented.insert(row[0].clone(), row) {
            problems.push(format!("{} is in the table twice", earlier[0]));
        }
    }
    for (flag, row) in &declared {
        match documented.get(flag) {
            None => problems.push(format!("{flag} is not in the table; its row starts {row:?}")),
            Some(listed) if listed != row => problems.push(format!("the table has {listed:?}, not {row:?}")),
            Some(_) => {}
        }
    }
    problems.extend(documented.keys().filter(|f| !declared.contains_key(*f)).map(|f| format!("{f} is no setting")));
    assert!(problems.is_empty(), "README.md's table of settings against serve_settings!:\n{}", problems.join("\n"));
}
