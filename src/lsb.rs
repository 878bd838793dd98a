//! The baseline every learned hider must beat: least-significant-bit substitution.
//!
//! `k`-bit LSB keeps the `8 − k` high bits of each cover value and stores the secret's `k`
//! high bits in the low ones; revealing shifts them back up and adds half a step (the middle
//! of the values that share those bits), so the revealed secret's error is about
//! 2^(8−k)/4 levels on average and the container's about 2^k/3. It needs no network, which is
//! why `stego eval --lsb` prints it beside the models' rows.

/// Bits per channel value that LSB substitution can carry (1 to 7).
pub const BITS: std::ops::RangeInclusive<u32> = 1..=7;

fn mask(bits: u32) -> u8 {
    assert!(BITS.contains(&bits), "LSB substitution takes 1 to 7 bits, not {bits}");
    ((1u16 << bits) - 1) as u8
}

/// Hides `secret` in `cover` (same length, any packed 8-bit layout), `bits` bits per value.
pub fn hide(cover: &[u8], secret: &[u8], bits: u32) -> Vec<u8> {
    assert_eq!(cover.len(), secret.len(), "LSB: cover and secret differ in size");
    let m = mask(bits);
    cover.iter().zip(secret).map(|(&c, &s)| (c & !m) | (s >> (8 - bits))).collect()
}

/// Reveals what [`hide`] stored with the same `bits`.
pub fn reveal(container: &[u8], bits: u32) -> Vec<u8> {
    let m = mask(bits);
    let half = if bits < 8 { 1u8 << (7 - bits) } else { 0 };
    container.iter().map(|&c| ((c & m) << (8 - bits)) | half).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_and_four_bits() {
        let cover = [0u8, 255, 100, 37];
        let secret = [255u8, 0, 200, 37];
        // 3 bits: the secret's top 3 bits (7, 0, 6, 1) replace the cover's low 3.
        let c3 = hide(&cover, &secret, 3);
        assert_eq!(c3, [7, 248, 102, 33]);
        // Revealed: top bits back, plus half a step (16).
        assert_eq!(reveal(&c3, 3), [240, 16, 208, 48]);
        let c4 = hide(&cover, &secret, 4);
        assert_eq!(c4, [15, 240, 108, 34]);
        assert_eq!(reveal(&c4, 4), [248, 8, 200, 40]);
    }

    #[test]
    fn errors_are_bounded_by_the_step() {
        for bits in BITS {
            let cover: Vec<u8> = (0..=255).collect();
            let secret: Vec<u8> = (0..=255).rev().collect();
            let c = hide(&cover, &secret, bits);
            let r = reveal(&c, bits);
            let step = 1i32 << (8 - bits);
            assert!(cover.iter().zip(&c).all(|(&a, &b)| (a as i32 - b as i32).abs() < (1 << bits)));
            assert!(secret.iter().zip(&r).all(|(&a, &b)| (a as i32 - b as i32).abs() <= step / 2));
        }
    }
}
