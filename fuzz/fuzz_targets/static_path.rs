//! `static_files::static_path` on arbitrary request paths: no panic, and what it accepts
//! stays inside the static folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::static_files::static_path;
use std::path::Component;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(resolved) = static_path(path) else {
        return;
    };
    assert!(path.starts_with('/'));
    assert!(resolved.relative.is_relative());
    for component in resolved.relative.components() {
        let Component::Normal(name) = component else {
            panic!("{path:?} resolved to {:?}", resolved.relative);
        };
        let name = name.to_str().expect("decoded names are UTF-8");
        assert!(!name.is_empty() && !name.starts_with('.'));
        assert!(!name.contains(['/', '\\', '\0']));
    }
    // Joined to any folder, the result stays below it.
    let root = std::path::Path::new("/srv/static");
    assert!(root.join(&resolved.relative).starts_with(root));
    assert_eq!(resolved.folder, path.ends_with('/'));
});
