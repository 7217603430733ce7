//! Shorter import names for the SDK's WebAssembly. `wasm-bindgen` names each
//! import after the JavaScript it calls plus a 16-digit hash
//! (`__wbg_fetch_21015a0a4570ab44`), and writes every name twice: in the
//! `.wasm`'s import section and as a key of the glue's import object. The
//! hashes do not compress, so both files carry them at full cost. This renames
//! each to a short name (`a`, `b`, … `ba`, …) in both places at once.
//!
//! Only imports whose name is a key of the glue's import object exactly once
//! are renamed; anything else keeps its name, so a change in `wasm-bindgen`'s
//! output makes the package bigger, never broken (and the browser tests
//! load every build).

const IMPORT_SECTION: u8 = 2;

fn read_leb(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos).ok_or("the module ends inside a number")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 63 {
            return Err("a number in the module is too long".into());
        }
    }
}

fn write_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_name<'a>(bytes: &'a [u8], pos: &mut usize) -> Result<&'a str, String> {
    let len = read_leb(bytes, pos)? as usize;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("a name runs past the end of the module")?;
    let name = std::str::from_utf8(&bytes[*pos..end]).map_err(|_| "a name is not UTF-8")?;
    *pos = end;
    Ok(name)
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    write_leb(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
}

fn byte(bytes: &[u8], pos: &mut usize) -> Result<u8, String> {
    let b = *bytes.get(*pos).ok_or("the module ends inside an import")?;
    *pos += 1;
    Ok(b)
}

/// A value or reference type: one byte, or `ref`/`ref null` and a heap type.
fn skip_type(bytes: &[u8], pos: &mut usize) -> Result<(), String> {
    if matches!(byte(bytes, pos)?, 0x63 | 0x64) {
        read_leb(bytes, pos)?;
    }
    Ok(())
}

fn skip_limits(bytes: &[u8], pos: &mut usize) -> Result<(), String> {
    let flags = byte(bytes, pos)?;
    read_leb(bytes, pos)?;
    if flags & 1 != 0 {
        read_leb(bytes, pos)?;
    }
    Ok(())
}

/// Moves past an import's description (what kind of thing it imports).
fn skip_import_description(bytes: &[u8], pos: &mut usize) -> Result<(), String> {
    match byte(bytes, pos)? {
        0x00 => read_leb(bytes, pos).map(drop),
        0x01 => {
            skip_type(bytes, pos)?;
            skip_limits(bytes, pos)
        }
        0x02 => skip_limits(bytes, pos),
        0x03 => {
            skip_type(bytes, pos)?;
            byte(bytes, pos).map(drop)
        }
        0x04 => {
            byte(bytes, pos)?;
            read_leb(bytes, pos).map(drop)
        }
        other => Err(format!("an import of unknown kind {other:#x}")),
    }
}

/// The `n`th short name: `a` … `Z`, then `ba`, `bb`, …
fn short_name(mut n: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut name = Vec::new();
    loop {
        name.push(LETTERS[n % LETTERS.len()]);
        n /= LETTERS.len();
        if n == 0 {
            break;
        }
    }
    name.reverse();
    String::from_utf8(name).expect("ASCII letters")
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Where `name` stands alone as an identifier in `text`.
fn identifier_positions(text: &str, name: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    text.match_indices(name)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(at + name.len()).copied();
            !before.is_some_and(is_identifier_byte) && !after.is_some_and(is_identifier_byte)
        })
        .collect()
}

/// Renames the imports of `module` in `wasm` and in `glue`; answers both and
/// how many were renamed.
pub fn shorten(wasm: &[u8], glue: &str, module: &str) -> Result<(Vec<u8>, String, usize), String> {
    if wasm.get(..8) != Some(b"\0asm\x01\0\0\0".as_slice()) {
        return Err("not a WebAssembly module (version 1)".into());
    }
    let mut out = wasm[..8].to_vec();
    let mut glue = glue.to_string();
    let mut renamed = 0;
    let mut next_name = 0;
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_leb(wasm, &mut pos)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= wasm.len())
            .ok_or("a section runs past the end of the module")?;
        if id != IMPORT_SECTION {
            out.extend_from_slice(&wasm[start..end]);
            pos = end;
            continue;
        }
        let section = &wasm[pos..end];
        let mut p = 0;
        let count = read_leb(section, &mut p)?;
        let mut payload = Vec::with_capacity(section.len());
        write_leb(&mut payload, count);
        for _ in 0..count {
            let from = read_name(section, &mut p)?;
            let name = read_name(section, &mut p)?;
            let description = p;
            skip_import_description(section, &mut p)?;
            let mut new_name = name.to_string();
            if from == module {
                // The glue's import object has `name: function(…)`: exactly one key.
                let keys: Vec<usize> = identifier_positions(&glue, name);
                let is_key = keys.len() == 1 && glue[keys[0] + name.len()..].starts_with(':');
                if is_key {
                    let short = loop {
                        let candidate = short_name(next_name);
                        next_name += 1;
                        if identifier_positions(&glue, &candidate).is_empty() {
                            break candidate;
                        }
                    };
                    glue.replace_range(keys[0]..keys[0] + name.len(), &short);
                    new_name = short;
                    renamed += 1;
                }
            }
            write_name(&mut payload, from);
            write_name(&mut payload, &new_name);
            payload.extend_from_slice(&section[description..p]);
        }
        if p != section.len() {
            return Err("the import section has bytes after its last import".into());
        }
        out.push(IMPORT_SECTION);
        write_leb(&mut out, payload.len() as u64);
        out.extend_from_slice(&payload);
        pos = end;
    }
    Ok((out, glue, renamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing two functions from `./m.js` and one from `env`.
    fn module() -> Vec<u8> {
        let mut imports = Vec::new();
        write_leb(&mut imports, 3);
        for (from, name) in [
            ("./m.js", "__wbg_fetch_0123456789abcdef"),
            ("./m.js", "__wbg_log_fedcba9876543210"),
            ("env", "__wbg_fetch_0123456789abcdef"),
        ] {
            write_name(&mut imports, from);
            write_name(&mut imports, name);
            imports.extend_from_slice(&[0x00, 0x00]); // a function of type 0
        }
        let types = [0x01, 0x60, 0x00, 0x00]; // one type: () -> ()
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.push(1);
        write_leb(&mut wasm, types.len() as u64);
        wasm.extend_from_slice(&types);
        wasm.push(IMPORT_SECTION);
        write_leb(&mut wasm, imports.len() as u64);
        wasm.extend_from_slice(&imports);
        wasm
    }

    fn import_names(wasm: &[u8]) -> Vec<(String, String)> {
        let mut pos = 8;
        while pos < wasm.len() {
            let id = wasm[pos];
            pos += 1;
            let size = read_leb(wasm, &mut pos).unwrap() as usize;
            if id == IMPORT_SECTION {
                let section = &wasm[pos..pos + size];
                let mut p = 0;
                let count = read_leb(section, &mut p).unwrap();
                return (0..count)
                    .map(|_| {
                        let from = read_name(section, &mut p).unwrap().to_string();
                        let name = read_name(section, &mut p).unwrap().to_string();
                        skip_import_description(section, &mut p).unwrap();
                        (from, name)
                    })
                    .collect();
            }
            pos += size;
        }
        Vec::new()
    }

    #[test]
    fn renames_the_imports_of_the_module_in_both_files() {
        let glue = "const i = { __proto__: null,\n  __wbg_fetch_0123456789abcdef: function(url) { return fetch(url); },\n  __wbg_log_fedcba9876543210: function(text) { console.log(text); },\n};";
        let (wasm, glue, renamed) = shorten(&module(), glue, "./m.js").unwrap();
        assert_eq!(renamed, 2);
        assert_eq!(
            import_names(&wasm),
            [
                ("./m.js".to_string(), "a".to_string()),
                ("./m.js".to_string(), "b".to_string()),
                (
                    "env".to_string(),
                    "__wbg_fetch_0123456789abcdef".to_string()
                ),
            ]
        );
        assert!(
            glue.contains("\n  a: function(url) { return fetch(url); }"),
            "{glue}"
        );
        assert!(
            glue.contains("\n  b: function(text) { console.log(text); }"),
            "{glue}"
        );
        assert!(!glue.contains("__wbg_"), "{glue}");
    }

    #[test]
    fn a_name_that_is_not_a_single_key_of_the_glue_keeps_its_name() {
        let glue =
            "const i = { __wbg_fetch_0123456789abcdef: f, x: __wbg_fetch_0123456789abcdef };";
        let (wasm, out, renamed) = shorten(&module(), glue, "./m.js").unwrap();
        assert_eq!(renamed, 0);
        assert_eq!(out, glue);
        assert_eq!(import_names(&wasm)[0].1, "__wbg_fetch_0123456789abcdef");
    }

    #[test]
    fn a_short_name_the_glue_already_uses_is_skipped() {
        let glue = "const a = 1; const i = { __wbg_fetch_0123456789abcdef: function() {} };";
        let (wasm, out, _) = shorten(&module(), glue, "./m.js").unwrap();
        assert_eq!(import_names(&wasm)[0].1, "b");
        assert!(out.contains("{ b: function() {} }"), "{out}");
    }

    #[test]
    fn short_names_run_through_the_letters_then_two() {
        assert_eq!(short_name(0), "a");
        assert_eq!(short_name(51), "Z");
        assert_eq!(short_name(52), "ba");
        assert_eq!(short_name(53), "bb");
    }

    #[test]
    fn not_a_module_is_an_error() {
        assert!(shorten(b"hello", "", "./m.js").is_err());
    }
}
