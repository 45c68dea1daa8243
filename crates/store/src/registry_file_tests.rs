use super::*;

const EXAMPLE: &str = r#"[[tenants]]
name = "abc"

[[webapps]]
name = "assetmanager"
provider = "xyz"                   # optional: core apps have none
backend = "http://127.0.0.1:9001"
tenants = ["abc"]                  # which tenants are subscribed (optional, default empty)
cache_control = ""                 # optional (empty string means none)
websockets = ["/videostream"]      # optional
auth = "none"

[[apis]]
name = "iot"
provider = "xyz"                   # optional
version = 3
backend = "http://127.0.0.1:9002"
routes = [ { pattern = "/assets/**", methods = ["GET", "POST"] } ]   # methods optional
tenants = ["abc"]
auth = "none"
"#;

fn path() -> &'static Path {
    Path::new("/etc/portico/registry.toml")
}

fn err(text: &str) -> RegistryFileError {
    parse(text, path()).expect_err("the file should be refused")
}

/// The message names the file, the line, the key and the reason.
fn assert_message(e: &RegistryFileError, line: usize, key: &str, reason: &str) {
    let msg = e.to_string();
    assert_eq!(e.line, Some(line), "{msg}");
    assert!(
        msg.starts_with(&format!("/etc/portico/registry.toml:{line}: ")),
        "{msg}"
    );
    assert!(
        e.key.contains(key),
        "key {:?} should contain {key:?}: {msg}",
        e.key
    );
    assert!(msg.contains(reason), "{msg} should contain {reason:?}");
}

#[test]
fn the_example_parses() {
    let reg = parse(EXAMPLE, path()).unwrap();
    let expected = Registry {
        tenants: vec![Tenant {
            name: "abc".into(),
            origin: Origin::File,
        }],
        webapps: vec![WebApp {
            name: "assetmanager".into(),
            provider: Some("xyz".into()),
            backend: "http://127.0.0.1:9001".into(),
            tenants: vec!["abc".into()],
            cache_control: None,
            websockets: vec!["/videostream".into()],
            auth: Auth::None,
            scopes: vec![],
            origin: Origin::File,
        }],
        apis: vec![Api {
            name: "iot".into(),
            provider: Some("xyz".into()),
            version: 3,
            backend: "http://127.0.0.1:9002".into(),
            routes: vec![Route {
                pattern: "/assets/**".into(),
                methods: vec!["GET".into(), "POST".into()],
            }],
            tenants: vec!["abc".into()],
            auth: Auth::None,
            scopes: vec![],
            origin: Origin::File,
        }],
    };
    assert_eq!(reg, expected);
}

#[test]
fn optional_keys_default_to_empty() {
    let text = "[[webapps]]\nname = \"console\"\nbackend = \"http://127.0.0.1:1\"\ncache_control = \"no-store\"\nauth = \"none\"\n\n\
                [[apis]]\nname = \"status\"\nversion = 1\nbackend = \"http://127.0.0.1:2\"\nauth = \"none\"\n\
                routes = [ { pattern = \"/a\" }, { pattern = \"/b\", methods = [\"GET\"] } ]\n";
    let reg = parse(text, path()).unwrap();
    let w = &reg.webapps[0];
    assert_eq!(
        (w.provider.as_deref(), w.tenants.len(), w.websockets.len()),
        (None, 0, 0)
    );
    assert_eq!(w.cache_control.as_deref(), Some("no-store"));
    let a = &reg.apis[0];
    assert_eq!(
        a.routes
            .iter()
            .map(|r| r.pattern.as_str())
            .collect::<Vec<_>>(),
        ["/a", "/b"]
    );
    assert!(a.routes[0].methods.is_empty());
}

#[test]
fn an_empty_file_is_an_empty_registry() {
    assert_eq!(parse("", path()).unwrap(), Registry::default());
    assert_eq!(
        parse("# nothing yet\n\n", path()).unwrap(),
        Registry::default()
    );
}

#[test]
fn syntax_errors_give_the_toml_line() {
    let e = err("[[tenants]]\nname = \"abc\n");
    assert_message(&e, 2, "tenants.name", "invalid basic string");
    let e = err("[[tenants]]\nname = \"abc\"\n[[webapps]\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn single_brackets_get_a_hint() {
    let e = err("[tenants]\nname = \"abc\"\n");
    assert_message(&e, 1, "tenants", "(double brackets)");
}

#[test]
fn type_errors_give_the_line_and_key() {
    let e =
        err("[[apis]]\nname = \"iot\"\nversion = -1\nbackend = \"http://h\"\nauth = \"none\"\n");
    assert_message(&e, 3, "apis.version", "expected u32");
}

#[test]
fn unknown_keys_are_errors() {
    let e = err("[[tenants]]\nname = \"abc\"\ncolour = \"red\"\n");
    assert_message(&e, 3, "tenants.colour", "unknown field `colour`");
    let e = err("tenant = []\n");
    assert_message(&e, 1, "tenant", "unknown field `tenant`");
    let e = err(
        "[[apis]]\nname = \"iot\"\nversion = 1\nbackend = \"http://h\"\nauth = \"none\"\n\
         routes = [ { pattern = \"/a\", method = [\"GET\"] } ]\n",
    );
    assert_message(&e, 6, "apis.routes.method", "unknown field `method`");
}

#[test]
fn missing_required_keys_are_errors() {
    let e = err("[[tenants]]\nname = \"abc\"\n\n[[webapps]]\nname = \"shop\"\nauth = \"none\"\n");
    assert_message(&e, 4, "webapps.backend", "missing field `backend`");
}

#[test]
fn auth_is_required_and_says_why() {
    let e = err(
        "[[tenants]]\nname = \"abc\"\n\n[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\n",
    );
    assert_message(
        &e,
        4,
        "webapp \"shop\": auth",
        "auth is required in every registration: \"session\" (web apps",
    );
    let e = err("[[apis]]\nname = \"iot\"\nversion = 2\nbackend = \"http://h\"\n");
    assert_message(&e, 1, "api \"iot/v2\": auth", "auth is required");
    let e = err("[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\n\nauth = \"basic\"\n");
    assert_message(&e, 5, "webapp \"shop\": auth", "unknown auth \"basic\"");
}

#[test]
fn session_and_bearer_with_scopes_parse() {
    let text = "[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\nauth = \"session\"\nscopes = [\"role:admin\"]\n\n\
                [[apis]]\nname = \"iot\"\nversion = 1\nbackend = \"http://h\"\nauth = \"bearer\"\nscopes = [\"iot.read\", \"iot.write\"]\n";
    let reg = parse(text, path()).unwrap();
    assert_eq!(reg.webapps[0].auth, Auth::Session);
    assert_eq!(reg.webapps[0].scopes, ["role:admin"]);
    assert_eq!(reg.apis[0].auth, Auth::Bearer);
    assert_eq!(reg.apis[0].scopes, ["iot.read", "iot.write"]);
}

#[test]
fn auth_must_fit_the_kind_of_registration() {
    let e = err("[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\n\nauth = \"bearer\"\n");
    assert_message(&e, 5, "webapp \"shop\": auth", "\"bearer\" is for APIs");
    let e =
        err("[[apis]]\nname = \"iot\"\nversion = 1\nbackend = \"http://h\"\nauth = \"session\"\n");
    assert_message(&e, 5, "api \"iot/v1\": auth", "\"session\" is for web apps");
}

#[test]
fn scopes_need_auth_and_valid_tokens() {
    let e = err("[[apis]]\nname = \"iot\"\nversion = 1\nbackend = \"http://h\"\nauth = \"none\"\n\nscopes = [\"read\"]\n");
    assert_message(&e, 7, "api \"iot/v1\": scopes", "scopes need auth");
    let e = err("[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\nauth = \"session\"\nscopes = [\"two words\"]\n");
    assert_message(
        &e,
        5,
        "webapp \"shop\": scopes",
        "\"two words\" is not a scope",
    );
}

#[test]
fn bad_names_name_the_entry_and_key() {
    let e = err("[[tenants]]\nname = \"abc\"\n\n[[tenants]]\n\nname = \"Big-Co\"\n");
    assert_message(&e, 6, "tenant \"Big-Co\": name", "is not a valid name");
    let e = err("[[webapps]]\nname = \"shop\"\nprovider = \"x-y\"\nbackend = \"http://h\"\nauth = \"none\"\n");
    assert_message(
        &e,
        3,
        "webapp \"shop-x-y\": provider",
        "is not a valid name",
    );
    let e = err("[[webapps]]\nname = \"shop\"\nbackend = \"ftp://h\"\nauth = \"none\"\n");
    assert_message(&e, 3, "webapp \"shop\": backend", "must start with http://");
    let e = err("[[apis]]\nname = \"iot\"\nversion = 0\nbackend = \"http://h\"\nauth = \"none\"\n");
    assert_message(&e, 3, "api \"iot/v0\": version", "from 1 to 999999999");
}

#[test]
fn unknown_tenant_references_are_errors() {
    let e = err(
        "[[tenants]]\nname = \"abc\"\n\n[[webapps]]\nname = \"shop\"\nbackend = \"http://h\"\n\
         tenants = [\"abc\", \"abd\"]\nauth = \"none\"\n",
    );
    assert_message(
        &e,
        7,
        "webapp \"shop\": tenants",
        "tenant \"abd\" is not registered",
    );
}

#[test]
fn duplicates_are_errors() {
    let e = err("[[tenants]]\nname = \"abc\"\n\n[[tenants]]\nname = \"abc\"\n");
    assert_message(
        &e,
        4,
        "tenant \"abc\"",
        "is registered twice (first at line 1)",
    );
    let api = "[[apis]]\nname = \"iot\"\nversion = 1\nbackend = \"http://h\"\nauth = \"none\"\n";
    let e = err(&format!("{api}\n{api}"));
    assert_message(
        &e,
        7,
        "api \"iot/v1\"",
        "is registered twice (first at line 1)",
    );
}

#[test]
fn unreadable_files_name_the_file() {
    let e = load(Path::new("/nonexistent/registry.toml")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/registry.toml: cannot read the registry file: "),
        "{msg}"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.toml");
    std::fs::write(&file, EXAMPLE).unwrap();
    assert_eq!(load(&file).unwrap(), parse(EXAMPLE, path()).unwrap());
}
