//! Decimal numbers as people and `/proc` write them (`30`, `0.25`, `1e1`,
//! `0.84`), read without `str::parse::<f64>`, whose exact algorithm for
//! any input brings a 10 KB table of powers of five (about 14 KB in all on
//! ARMv6; docs/benchmarks.md, "Binary size"). Every number the agent reads
//! has few digits: up to 15 significant digits and a power of ten within
//! 10^±22 the result is exact (one correctly rounded operation on two
//! exact values, as in Clinger's fast path); longer ones are within an
//! ulp or two, far below any interval, percentage or load that matters.

/// `[+-]digits[.digits][(e|E)[+-]digits]`, with a digit before or after
/// the point; no `inf`, `NaN` or blanks. None for anything else.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: u64 = 0;
    // Digits past the 19 a u64 holds only scale the value.
    let mut dropped: i32 = 0;
    let mut digits = 0;
    let mut scale: i32 = 0;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                match mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(b - b'0')))
                {
                    Some(m) => {
                        mantissa = m;
                        if seen_point {
                            scale -= 1;
                        }
                    }
                    None if !seen_point => dropped += 1,
                    None => {}
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        at += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        let sign = match bytes.get(at) {
            Some(b'-') => {
                at += 1;
                -1
            }
            Some(b'+') => {
                at += 1;
                1
            }
            _ => 1,
        };
        let start = at;
        let mut exponent: i32 = 0;
        while let Some(&b @ b'0'..=b'9') = bytes.get(at) {
            // Past 10^±9999 every value is 0 or infinite anyway.
            exponent = (exponent * 10 + i32::from(b - b'0')).min(9_999);
            at += 1;
        }
        if at == start {
            return None;
        }
        scale += sign * exponent;
    }
    if at != bytes.len() {
        return None;
    }
    let exponent = scale + dropped;
    let value = scaled(mantissa, exponent);
    Some(if negative { -value } else { value })
}

/// mantissa x 10^exponent.
fn scaled(mantissa: u64, exponent: i32) -> f64 {
    // Powers of ten up to 10^22 are exact in an f64.
    const EXACT: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if mantissa == 0 {
        return 0.0;
    }
    let m = mantissa as f64;
    match usize::try_from(exponent.unsigned_abs()) {
        Ok(e) if e < EXACT.len() => {
            if exponent >= 0 {
                m * EXACT[e]
            } else {
                m / EXACT[e]
            }
        }
        _ if exponent > 0 => m * 10f64.powi(exponent.min(400)),
        // Two steps, so that 10^-e itself cannot round to zero too early.
        _ => m / 1e22 / 10f64.powi((-exponent - 22).min(400)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_and_proc_write() {
        for (text, value) in [
            ("30", 30.0),
            ("0.25", 0.25),
            ("0.1", 0.1),
            ("86400", 86_400.0),
            ("1e1", 10.0),
            ("2.5E-3", 0.0025),
            ("+5", 5.0),
            ("-1", -1.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("0.84", 0.84),
            ("12345.67", 12_345.67),
            ("000", 0.0),
        ] {
            assert_eq!(parse_decimal(text), Some(value), "{text}");
        }
        for bad in [
            "", "-", ".", "e5", "1e", "1e+", "abc", "30s", " 30", "30 ", "NaN", "inf", "1..2",
            "1.2.3", "--1", "0x10",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?} accepted");
        }
    }

    /// Within the fast path's range the result is std's, bit for bit.
    #[test]
    fn agrees_with_std_on_random_short_decimals() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200_000 {
            let int = rng.u64(0..1_000_000_000);
            let frac_digits = rng.usize(0..7);
            let frac = rng.u64(0..10u64.pow(frac_digits as u32));
            let mut text = if frac_digits == 0 {
                int.to_string()
            } else {
                format!("{int}.{frac:0width$}", width = frac_digits)
            };
            if rng.bool() {
                text.push_str(&format!("e{}", rng.i32(-8..=8)));
            }
            let ours = parse_decimal(&text);
            let std: f64 = text.parse().unwrap();
            assert_eq!(ours.map(f64::to_bits), Some(std.to_bits()), "{text}");
        }
    }

    #[test]
    fn long_and_extreme_numbers_stay_close_and_finite_where_std_is() {
        for text in [
            "123456789012345678901234567890",
            "0.000000000000000000000000000001234",
            "3.14159265358979323846264338327950288",
            "1e300",
            "1e-300",
            "1e999999",
            "1e-999999",
        ] {
            let ours = parse_decimal(text).unwrap();
            let std: f64 = text.parse().unwrap();
            if std == 0.0 || std.is_infinite() {
                assert_eq!(ours, std, "{text}");
            } else {
                assert!(
                    ((ours - std) / std).abs() < 1e-14,
                    "{text}: {ours} vs {std}"
                );
            }
        }
    }
}
