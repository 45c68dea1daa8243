//! `parse_api_path` on arbitrary paths: no panic, and the parts rebuild the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::routing::{parse_api_path, ApiPrefix};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(api) = parse_api_path(path) else {
        return;
    };
    assert!(api.endpoint.starts_with('/'));
    // The endpoint is the raw tail of the path, or "/" when nothing follows the version.
    assert!(api.endpoint == "/" || path.ends_with(api.endpoint));
    assert!(api.major >= 1);
    let prefix = match api.prefix {
        ApiPrefix::Api => "api",
        ApiPrefix::Services => "services",
    };
    let provider = api.provider.map(|p| format!("-{p}")).unwrap_or_default();
    let rebuilt = format!(
        "/{prefix}/{}{provider}/v{}{}",
        api.name, api.major, api.endpoint
    );
    assert!(
        rebuilt == path || rebuilt == format!("{path}/"),
        "{rebuilt:?} from {path:?}"
    );
});
