//! The destination's JSON cursor (`destination::fast::Cursor`, which the fast paths of
//! `/v1/batch` and of planning read event texts with) against serde_json's JSON tree: on any
//! text, what the cursor reads the tree reads too, to the same value. The cursor may give up
//! on a text the tree reads (see its docs), never read one the tree refuses.
//!
//! Input: the text (inputs that are not UTF-8 are skipped: the server reads bodies as UTF-8
//! before the cursor sees them).
#![no_main]

use destination::fast::Cursor;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut c = Cursor::new(text);
    let ours = c.tree().filter(|_| c.end().is_some());
    let mut skipped = Cursor::new(text);
    let skips = skipped.skip().is_some() && skipped.end().is_some();
    assert_eq!(ours.is_some(), skips, "reading and skipping disagree");
    if let Some(ours) = ours {
        let theirs: Value = serde_json::from_str(text).expect("the tree reads what the cursor read");
        assert_eq!(ours, theirs);
    }
});
