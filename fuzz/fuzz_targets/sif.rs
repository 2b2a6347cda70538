//! The SIF header parser: any bytes (the first bytes of a pushed layer)
//! give a description or an error, never a panic; what it describes lies
//! within the prefix it was given and the bound it reads, and lists no more
//! objects than the table has slots.
#![no_main]

use berth_registry::sif;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let end = sif::table_end(data);
    if let Ok(image) = sif::parse(data) {
        let end = end.expect("parse accepts only a header table_end accepts");
        assert!(end <= data.len() && end <= sif::MAX_PREFIX);
        assert!(image.objects.len() as u64 <= image.descriptors_total as u64);
        assert!(image.fingerprints().len() <= image.signatures().count());
    }
});
