//! The contract's error codes are listed once, in `plugboard::error`; the
//! SDK's TypeScript types, its WebAssembly client and its JavaScript facade
//! are checked against that list here, so they cannot drift apart.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `'…'` or `"…"` literal between `start` and the next `end`.
fn quoted_between(text: &str, start: &str, end: &str) -> BTreeSet<String> {
    let from = text.find(start).unwrap_or_else(|| panic!("no `{start}`")) + start.len();
    let to = from
        + text[from..]
            .find(end)
            .unwrap_or_else(|| panic!("no `{end}` after `{start}`"));
    text[from..to]
        .split(['\'', '"'])
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn contract() -> BTreeSet<String> {
    plugboard::error::contract_codes()
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_typescript_error_code_type_is_the_contract_list() {
    let types = quoted_between(&repo_file("npm/index.d.ts"), "export type ErrorCode =", ";");
    assert_eq!(
        types,
        contract(),
        "npm/index.d.ts and plugboard::error disagree"
    );
}

#[test]
fn the_sdk_raises_only_codes_of_the_list() {
    let contract = contract();
    let wasm = repo_file("sdk-wasm/src/error.rs");
    let mut raised = BTreeSet::new();
    for line in wasm
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const "))
    {
        raised.extend(quoted_between(line, "=", ";"));
    }
    let facade = repo_file("npm/index.js");
    for part in facade.split("plugboardError(").skip(1) {
        raised.extend(quoted_between(part, "", ","));
    }
    assert!(
        raised.len() >= 5,
        "the scan found the SDK's codes: {raised:?}"
    );
    let unknown: Vec<&String> = raised.difference(&contract).collect();
    assert!(
        unknown.is_empty(),
        "codes outside the contract's list: {unknown:?}"
    );
}

#[test]
fn every_code_has_one_name_and_a_status() {
    for code in plugboard::error::ErrorCode::ALL {
        let status = code.status();
        assert!((400..600).contains(&status), "{code:?}");
        assert!(contract().contains(code.as_str()));
    }
    // Statuses that vary by cause keep the one code.
    use plugboard::error::ErrorCode as C;
    for variant in [
        C::BadRequest,
        C::PayloadTooLarge,
        C::RequestTimeout,
        C::UriTooLong,
        C::HeadersTooLarge,
    ] {
        assert_eq!(variant.as_str(), "validation_failed");
    }
}
