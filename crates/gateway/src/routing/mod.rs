//! Pure parsers and matchers of the routing layer; no I/O, fuzzed.
