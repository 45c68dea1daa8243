//! Bayeux channel patterns: the input is `pattern NUL channel`. No panic, and the laws of
//! the wildcards hold for every pattern.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_realtime::bayeux::channel::ChannelPattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, channel) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(compiled) = ChannelPattern::parse(pattern) else {
        return;
    };
    assert_eq!(compiled.as_str(), pattern);
    // `channel` is not validated: publish checks channels before matching.
    let matched = compiled.matches(channel);
    if !compiled.is_wildcard() {
        assert!(compiled.matches(pattern), "{pattern:?} matches itself");
        assert_eq!(matched, channel == pattern);
    }
    if let Some(parent) = pattern
        .strip_suffix("/**")
        .or_else(|| pattern.strip_suffix("/*"))
    {
        // Neither wildcard matches its parent channel.
        assert!(!compiled.matches(parent), "{pattern:?} vs {parent:?}");
        // (`/x/**` may be one character too long to parse when `/x/*` is not.)
        if let (true, Ok(deep)) = (matched, ChannelPattern::parse(&format!("{parent}/**"))) {
            assert!(
                deep.matches(channel),
                "/* ⊆ /** for {pattern:?} and {channel:?}"
            );
        }
    }
});
