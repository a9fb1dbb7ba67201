//! A `.index` file, then the data shard its entries point into.
//! Input layout: 2 bytes (little-endian u16) = length of the index part, the index bytes,
//! and the rest is the shard handed to `read_f32` for every entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnv1::testing::weights::checkpoint::Bundle;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (index, shard) = rest.split_at(split);
    let Ok(bundle) = Bundle::parse_index(index) else {
        return;
    };
    let _ = bundle.num_shards();
    let names: Vec<String> = bundle.entries().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let _ = bundle.read_f32(&name, shard);
    }
});
