//! Ant patterns: the input is `pattern NUL path`. No panic, no blow-up (libFuzzer reports
//! slow units), and a few laws that hold for every pattern.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::routing::{decode_unreserved, AntPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = text.split_once('\0').unwrap_or((text, ""));
    let compiled = AntPattern::new(pattern);
    assert_eq!(compiled.as_str(), pattern);
    let _ = compiled.specificity();
    let path = decode_unreserved(path);
    let matched = compiled.matches(&path);
    // Every wildcard matches itself, so a pattern matches its own text.
    assert!(compiled.matches(&decode_unreserved(pattern)), "{pattern:?}");
    // `/**` matches every path.
    assert!(AntPattern::new("/**").matches(&path));
    // A pattern without wildcards matches exactly its own (normalised) text.
    if !pattern.contains(['*', '?']) {
        let strip = |s: &str| s.strip_prefix('/').unwrap_or(s).to_owned();
        assert_eq!(matched, strip(&decode_unreserved(pattern)) == strip(&path));
    }
});
